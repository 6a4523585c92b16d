"""A client of WireGuard's cross-platform userspace API (the `wg` tool's protocol), for the gateway agent.

Speaks ``get=1`` / ``set=1`` over the unix socket ``/var/run/wireguard/<iface>.sock`` that linker's daemon (and
wireguard-go) serve. ``plan_sync`` turns a desired peer list into one ``set`` request with syncconf semantics: new
peers are added, changed peers are updated in place (their sessions survive), peers no longer wanted are removed,
and unchanged peers are not touched at all.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from linker.errors import LinkerError
from linker.wg.keys import public_key_of

SOCKET_DIR = Path("/var/run/wireguard")


class UapiError(LinkerError):
    """The daemon's configuration socket is missing or refused a request."""

    kind = "uapi_error"


@dataclass(frozen=True)
class PeerSpec:
    """A peer as the agent wants it. Keys are raw 32-byte values; endpoint is "host:port" or None."""

    public_key: bytes
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    persistent_keepalive: int = 0
    preshared_key: bytes | None = None

    def normalized_ips(self) -> tuple[str, ...]:
        return tuple(sorted(str(ipaddress.ip_network(n, strict=False)) for n in self.allowed_ips))


@dataclass
class PeerState:
    public_key: bytes
    endpoint: str | None = None
    allowed_ips: list[str] = field(default_factory=list)
    persistent_keepalive: int = 0
    last_handshake: float | None = None  # wall-clock seconds, None before the first handshake
    rx_bytes: int = 0
    tx_bytes: int = 0
    has_preshared_key: bool = False


@dataclass
class DeviceState:
    public_key: bytes | None = None
    listen_port: int = 0
    peers: dict[bytes, PeerState] = field(default_factory=dict)


def socket_path(interface: str) -> Path:
    return SOCKET_DIR / f"{interface}.sock"


def _request(path: Path, text: str, timeout: float = 5.0) -> str:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        sock.sendall(text.encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"".join(chunks[-2:]).endswith(b"\n\n"):
                break
    except OSError as exc:
        raise UapiError(f"cannot talk to the daemon at {path}: {exc.strerror or exc}",
                        "is `linker daemon` running for this interface?") from None
    finally:
        sock.close()
    return b"".join(chunks).decode()


def socket_owner(path: Path, timeout: float = 2.0) -> int | None:
    """The PID of the process serving the UAPI socket at ``path`` (SO_PEERCRED), None when nothing answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        return pid if pid > 0 else None
    except OSError:
        return None
    finally:
        sock.close()


def _errno(reply: str) -> int:
    for line in reply.splitlines():
        if line.startswith("errno="):
            return int(line[6:])
    raise UapiError("the daemon's reply had no errno line")


def get(path: Path) -> DeviceState:
    """The device's state as the daemon reports it (private and preshared keys are read but not kept)."""
    reply = _request(path, "get=1\n\n")
    if _errno(reply) != 0:
        raise UapiError(f"the daemon refused get (errno {_errno(reply)})")
    state = DeviceState()
    peer: PeerState | None = None
    sec = nsec = 0
    for line in reply.splitlines():
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        if key == "public_key":
            peer = PeerState(bytes.fromhex(value))
            state.peers[peer.public_key] = peer
            sec = nsec = 0
        elif peer is None:
            if key == "listen_port":
                state.listen_port = int(value)
            elif key == "private_key":
                state.public_key = public_key_of(bytes.fromhex(value))
        elif key == "endpoint":
            peer.endpoint = value
        elif key == "allowed_ip":
            peer.allowed_ips.append(value)
        elif key == "persistent_keepalive_interval":
            peer.persistent_keepalive = int(value)
        elif key == "rx_bytes":
            peer.rx_bytes = int(value)
        elif key == "tx_bytes":
            peer.tx_bytes = int(value)
        elif key == "preshared_key":
            peer.has_preshared_key = value != "0" * 64
        elif key in ("last_handshake_time_sec", "last_handshake_time_nsec"):
            if key.endswith("_sec"):
                sec = int(value)
            else:
                nsec = int(value)
            peer.last_handshake = sec + nsec / 1e9 if sec else None
    return state


def plan_sync(desired: list[PeerSpec], applied: dict[bytes, PeerSpec], current: DeviceState) -> str | None:
    """The ``set`` request that brings the device from ``current`` to ``desired``; None if nothing changes.

    ``applied`` is what the agent last configured: a peer is updated only when its desired spec changed from
    that, so an endpoint that roamed (a NAT rebinding) is not forced back on every poll.
    """
    lines: list[str] = []
    wanted = {p.public_key: p for p in desired}
    for key in current.peers:
        if key not in wanted:
            lines += [f"public_key={key.hex()}", "remove=true"]
    for key, spec in wanted.items():
        present = key in current.peers
        if present and applied.get(key) == spec:
            continue
        lines.append(f"public_key={key.hex()}")
        if present:
            lines.append("update_only=true")
        if spec.preshared_key is not None:
            lines.append(f"preshared_key={spec.preshared_key.hex()}")
        if spec.endpoint:
            lines.append(f"endpoint={spec.endpoint}")
        lines.append(f"persistent_keepalive_interval={spec.persistent_keepalive}")
        lines.append("replace_allowed_ips=true")
        lines += [f"allowed_ip={n}" for n in spec.normalized_ips()]
    if not lines:
        return None
    return "set=1\n" + "\n".join(lines) + "\n\n"


def set_(path: Path, request: str) -> None:
    reply = _request(path, request)
    code = _errno(reply)
    if code != 0:
        raise UapiError(f"the daemon refused the configuration change (errno {code})")
