"""WireGuard's cross-platform userspace API, so `wg show`, `wg set` and `wg syncconf` work on linker's device.

The protocol (https://www.wireguard.com/xplatform/#configuration-protocol): a client writes ``get=1\\n\\n`` or
``set=1\\n`` followed by ``key=value`` lines and an empty line; the daemon answers (for get, the device's state)
and ends with ``errno=N\\n\\n``, N being 0 or a negative errno as wireguard-go writes it.

``render_get`` and ``apply_set`` are the protocol, pure (no sockets); ``UapiServer`` is the unix socket at
/var/run/wireguard/<iface>.sock (mode 0600: a get reveals the private key), driven by the daemon's loop.
A ``set`` applies each peer's lines in one ``Device.set_peer`` call when the peer's block ends, so a peer's
endpoint, keys and allowed IPs change together; a malformed line stops the request there (earlier peers stay
applied, as wireguard-go does) and is answered with -EINVAL.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from linker.dataplane.config import split_host_port
from linker.errors import LinkerError
from linker.wg.actions import Action
from linker.wg.allowedips import Network
from linker.wg.device import Device

log = logging.getLogger("linker.daemon")

SOCKET_DIR = Path("/var/run/wireguard")
MAX_REQUEST = 1 << 20  # a set of thousands of peers fits; a runaway client does not
ZERO_KEY_HEX = "0" * 64


class UapiFailure(Exception):
    """A request the device refuses; ``code`` is the negative errno sent back."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Host(Protocol):
    """What a ``set`` may change beyond the core's device: the sockets and the routes."""

    listen_port: int
    fwmark: int

    def rebind(self, port: int) -> None: ...  # raises OSError or LinkerError (PortInUseError) when it cannot

    def set_fwmark(self, mark: int) -> None: ...


def fmt_endpoint(endpoint: tuple) -> str:
    host, port = endpoint[0], endpoint[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render_get(device: Device, listen_port: int, fwmark: int) -> str:
    """The ``get=1`` answer, in wireguard-go's order, ending with ``errno=0`` and the blank line."""
    out = [f"private_key={device.private_key.hex()}"] if device.keyed else []  # wireguard-go: none until set
    if listen_port:
        out.append(f"listen_port={listen_port}")
    if fwmark:
        out.append(f"fwmark={fwmark}")
    for p in device.peer_status():
        out.append(f"public_key={p.public_key.hex()}")
        out.append(f"preshared_key={(p.preshared_key or bytes(32)).hex()}")
        out.append("protocol_version=1")
        if p.endpoint is not None:
            out.append(f"endpoint={fmt_endpoint(p.endpoint)}")
        sec, nsec = (0, 0) if p.last_handshake is None else _split_time(p.last_handshake)
        out += [f"last_handshake_time_sec={sec}", f"last_handshake_time_nsec={nsec}", f"tx_bytes={p.tx_bytes}",
                f"rx_bytes={p.rx_bytes}", f"persistent_keepalive_interval={p.persistent_keepalive}"]
        out += [f"allowed_ip={net}" for net in p.allowed_ips]
    return "\n".join(out) + "\nerrno=0\n\n"


def _split_time(t: float) -> tuple[int, int]:
    ns = int(t * 1e9)
    return ns // 1_000_000_000, ns % 1_000_000_000


@dataclass
class _PeerEdit:
    public_key: bytes
    ignore: bool = False  # our own key, or update_only for a peer that does not exist, or removed
    remove: bool = False
    kwargs: dict = field(default_factory=dict)
    ips: list[Network] = field(default_factory=list)
    replace_ips: bool = False


def _hex_key(value: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise UapiFailure(-errno.EINVAL, f"{what} is not 64 hex digits")
    return key


def _uint(value: str, what: str, bits: int) -> int:
    if not value.isdigit() or int(value) >> bits:
        raise UapiFailure(-errno.EINVAL, f"{what} is not an unsigned {bits}-bit number")
    return int(value)


def _endpoint(value: str) -> tuple[str, int]:
    try:
        host, port = split_host_port(value)
        return str(ipaddress.ip_address(host)), _uint(port, "endpoint port", 16)
    except ValueError:
        raise UapiFailure(-errno.EINVAL, "endpoint is not address:port") from None


def apply_set(device: Device, host: Host, lines: list[str], now: float) -> list[Action]:
    """Apply a ``set=1`` request's lines (without the ``set=1`` line). Raises UapiFailure; returns actions
    (keepalives for peers whose persistent keepalive was just turned on)."""
    actions: list[Action] = []
    edit: _PeerEdit | None = None

    def finish() -> None:
        nonlocal edit
        if edit is None or edit.ignore:
            edit = None
            return
        if edit.remove:
            device.remove_peer(edit.public_key)
        else:
            kwargs = dict(edit.kwargs)
            if edit.replace_ips or edit.ips:
                kwargs["allowed_ips"] = edit.ips
                kwargs["replace_allowed_ips"] = edit.replace_ips
            actions.extend(device.set_peer(edit.public_key, now, **kwargs))
        edit = None

    for line in lines:
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiFailure(-errno.EPROTO, "a line without '='")
        if key == "public_key":
            finish()
            public = _hex_key(value, "public_key")
            edit = _PeerEdit(public, ignore=public == device.public_key)
            continue
        if edit is None:
            _device_line(device, host, key, value, now)
            continue
        _peer_line(device, edit, key, value)
    finish()
    return actions


def _device_line(device: Device, host: Host, key: str, value: str, now: float) -> None:
    if key == "private_key":
        if value == ZERO_KEY_HEX:
            raise UapiFailure(-errno.EINVAL, "linker's daemon needs a private key (an all-zero key was given)")
        new = _hex_key(value, "private_key")
        if not device.keyed or new != device.private_key:
            device.set_private_key(new, now)
    elif key == "listen_port":
        port = _uint(value, "listen_port", 16)
        if port != host.listen_port:
            try:
                host.rebind(port)
            except (OSError, LinkerError) as exc:
                raise UapiFailure(-errno.EADDRINUSE, f"cannot listen on port {port}: {exc}") from None
    elif key == "fwmark":
        host.set_fwmark(_uint(value, "fwmark", 32))
    elif key == "replace_peers":
        if value != "true":
            raise UapiFailure(-errno.EINVAL, "replace_peers takes only true")
        for public in list(device.peers):
            device.remove_peer(public)
    else:
        raise UapiFailure(-errno.EINVAL, f"unknown device key {key!r}")


def _peer_line(device: Device, edit: _PeerEdit, key: str, value: str) -> None:
    if key == "update_only":
        if value != "true":
            raise UapiFailure(-errno.EINVAL, "update_only takes only true")
        if edit.public_key not in device.peers:
            edit.ignore = True
    elif key == "remove":
        if value != "true":
            raise UapiFailure(-errno.EINVAL, "remove takes only true")
        edit.remove = True
    elif key == "preshared_key":
        psk = _hex_key(value, "preshared_key")
        edit.kwargs["preshared_key"] = None if psk == bytes(32) else psk
    elif key == "endpoint":
        edit.kwargs["endpoint"] = _endpoint(value)
    elif key == "persistent_keepalive_interval":
        edit.kwargs["persistent_keepalive"] = _uint(value, "persistent_keepalive_interval", 16)
    elif key == "replace_allowed_ips":
        if value != "true":
            raise UapiFailure(-errno.EINVAL, "replace_allowed_ips takes only true")
        edit.replace_ips = True
        edit.ips.clear()
    elif key == "allowed_ip":
        try:
            edit.ips.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise UapiFailure(-errno.EINVAL, "allowed_ip is not a network") from None
    elif key == "protocol_version":
        if value != "1":
            raise UapiFailure(-errno.EINVAL, "only protocol_version=1 exists")
    else:
        raise UapiFailure(-errno.EINVAL, f"unknown peer key {key!r}")


def handle_request(device: Device, host: Host, request: str, now: float) -> tuple[str, list[Action], bool]:
    """One complete request -> (reply, actions, changed). ``changed``: the peers or their allowed IPs may differ."""
    op, _, rest = request.partition("\n")
    if op == "get=1":
        return render_get(device, host.listen_port, host.fwmark), [], False
    lines = [ln for ln in rest.split("\n") if ln]
    try:
        actions = apply_set(device, host, lines, now)
        return "errno=0\n\n", actions, True
    except UapiFailure as exc:
        log.warning("uapi set refused: %s", exc)
        return f"errno={exc.code}\n\n", [], True


def complete_request(buf: bytes) -> int:
    """Length of the first complete request in ``buf`` (0: need more). Raises ValueError on an unknown op."""
    if buf.startswith(b"get=1\n"):
        if len(buf) < 7:
            return 0
        if buf[6:7] != b"\n":
            raise ValueError("trailing data after get=1")
        return 7
    if buf.startswith(b"set=1\n"):
        end = buf.find(b"\n\n", 5)
        return 0 if end < 0 else end + 2
    if len(buf) >= 6 or not (b"get=1\n".startswith(buf) or b"set=1\n".startswith(buf)):
        raise ValueError("unknown operation")
    return 0


class UapiServer:
    """The unix socket; the daemon's loop calls ``accept`` and ``readable`` when their fds are ready."""

    def __init__(self, interface: str, directory: Path = SOCKET_DIR) -> None:
        self.path = directory / f"{interface}.sock"
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._claim_path()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        old = os.umask(0o077)
        try:
            self.listener.bind(str(self.path))
        finally:
            os.umask(old)
        self.listener.listen(16)
        self.clients: dict[int, tuple[socket.socket, bytearray]] = {}

    def _claim_path(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise OSError(errno.EEXIST, f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink(missing_ok=True)  # a stale socket of a daemon that died
            return
        finally:
            probe.close()
        raise OSError(errno.EADDRINUSE, f"another daemon answers at {self.path}")

    def accept(self) -> socket.socket | None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return None
        conn.setblocking(False)
        self.clients[conn.fileno()] = (conn, bytearray())
        return conn

    def readable(self, fd: int, serve: Callable[[str], str]) -> bool:
        """Read from client ``fd``, answer its complete requests with ``serve``; False once it is closed."""
        conn, buf = self.clients[fd]
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            data = b""
        if not data:
            self.drop(fd)
            return False
        buf += data
        try:
            while (size := complete_request(bytes(buf[:MAX_REQUEST]))) > 0:
                request = bytes(buf[:size]).decode("utf-8", "replace")
                del buf[:size]
                reply = serve(request)
                conn.setblocking(True)  # replies are small; the wg tool reads them at once
                conn.settimeout(2.0)
                try:
                    conn.sendall(reply.encode())
                finally:
                    conn.setblocking(False)
            if len(buf) >= MAX_REQUEST:
                raise ValueError("request too large")
        except (ValueError, OSError) as exc:
            log.debug("uapi client dropped: %s", exc)
            self.drop(fd)
            return False
        return True

    def drop(self, fd: int) -> None:
        entry = self.clients.pop(fd, None)
        if entry is not None:
            entry[0].close()

    def close(self) -> None:
        for fd in list(self.clients):
            self.drop(fd)
        self.listener.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except PermissionError:  # dropped to a user that may not write the directory: the next start reclaims it
            log.info("the socket %s stays until the next start (this user may not remove it)", self.path)
