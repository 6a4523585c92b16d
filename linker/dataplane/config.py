"""The daemon's configuration file: the wg-quick format people already know.

    [Interface]
    PrivateKey = <base64>          # the file must then be mode 0600 (no group/other access)
    ListenPort = 51820             # 0 or absent: a random port
    Address = 10.0.0.1/24, fd00::1/64
    MTU = 1420
    FwMark = 0x1234                # optional, marks the tunnel's UDP packets
    Table = off                    # optional: "off" leaves the routes for AllowedIPs to you

    [Peer]
    PublicKey = <base64>
    PresharedKey = <base64>        # optional
    Endpoint = gw.example.net:51820 or 192.0.2.1:51820 or [2001:db8::1]:51820
    AllowedIPs = 10.1.0.0/16, fd01::/64
    PersistentKeepalive = 25       # seconds, or "off"

Keys are case-insensitive, ``#`` starts a comment, a key may repeat where a list is meant (Address, AllowedIPs).
wg-quick's shell hooks (PreUp, PostUp, PreDown, PostDown), DNS and SaveConfig are read and ignored with a warning:
the daemon runs no shell commands from its config. Every error names the file, the line and the problem.
Parsing is pure: ``parse(text, path)``; ``load(path)`` adds the file-mode check.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

from linker.errors import ConfigError, UserError
from linker.wg.allowedips import Network
from linker.wg.constants import DEFAULT_MTU
from linker.wg.keys import from_base64

log = logging.getLogger("linker.daemon")

MIN_MTU = 576  # smaller would not carry a minimal IPv4 packet plus WireGuard's overhead sensibly
MAX_MTU = 65535 - 80
IGNORED_KEYS = {"dns", "preup", "postup", "predown", "postdown", "saveconfig"}
MAX_IFNAME = 15  # IFNAMSIZ - 1


@dataclass(frozen=True)
class PeerConfig:
    public_key: bytes
    preshared_key: bytes | None = None
    endpoint: tuple[str, int] | None = None
    allowed_ips: tuple[Network, ...] = ()
    persistent_keepalive: int = 0
    line: int = 0  # where its [Peer] section starts, for messages


@dataclass(frozen=True)
class InterfaceConfig:
    private_key: bytes | None  # None: none yet (linker-wg, before `wg setconf` gives it one); a file always has one
    listen_port: int = 0
    addresses: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()
    mtu: int = DEFAULT_MTU
    fwmark: int = 0
    manage_routes: bool = True


@dataclass(frozen=True)
class DaemonConfig:
    interface: InterfaceConfig
    peers: tuple[PeerConfig, ...] = field(default=())
    path: str = "<config>"


def interface_name_for(path: Path) -> str:
    """wg-quick's rule: the interface is named after the file (``linker0.conf`` -> ``linker0``)."""
    return path.stem


def check_interface_name(name: str) -> str:
    if not name or len(name) > MAX_IFNAME or any(c in name for c in "/ \t\n:") or name in (".", ".."):
        raise UserError(f"interface name {name!r} is not valid (1 to {MAX_IFNAME} characters, no '/', ':' or "
                        "spaces)", fix="name the file after the interface (linker0.conf) or pass --interface NAME")
    return name


def load(path: Path) -> DaemonConfig:
    """Read and parse ``path``. A file that holds a private key must not be readable by group or others."""
    try:
        st = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError("no such file", path=str(path)) from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read it: {exc}", path=str(path)) from None
    config = parse(text, str(path))
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"it holds a private key and is readable by group or others (mode "
                          f"{stat.S_IMODE(st.st_mode):o})", path=str(path), fix=f"chmod 600 {path}")
    return config


class _Section:
    def __init__(self, kind: str, line: int) -> None:
        self.kind = kind
        self.line = line
        self.values: dict[str, tuple[str, int]] = {}
        self.lists: dict[str, list[tuple[str, int]]] = {}


_INTERFACE_KEYS = {"privatekey", "listenport", "address", "mtu", "fwmark", "table"}
_PEER_KEYS = {"publickey", "presharedkey", "endpoint", "allowedips", "persistentkeepalive"}
_LIST_KEYS = {"address", "allowedips"}


def parse(text: str, path: str = "<config>") -> DaemonConfig:
    """Parse wg-quick text; raises ConfigError naming ``path``, the line and the problem."""
    sections: list[_Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            name = line.strip("[]").strip().lower()
            if not line.endswith("]") or name not in ("interface", "peer"):
                raise ConfigError(f"unknown section {line!r}", path=path, line=number,
                                  fix="sections are [Interface] and [Peer]")
            if name == "interface" and any(s.kind == "interface" for s in sections):
                raise ConfigError("a second [Interface] section", path=path, line=number)
            sections.append(_Section(name, number))
            continue
        if "=" not in line:
            # the line is not echoed: it may hold a key
            raise ConfigError("expected 'Key = value'", path=path, line=number)
        if not sections:
            raise ConfigError("a key before any section", path=path, line=number, fix="start with [Interface]")
        key, value = (p.strip() for p in line.split("=", 1))
        key_l = key.lower()
        section = sections[-1]
        if key_l in IGNORED_KEYS and section.kind == "interface":
            log.warning("%s:%d: %s is a wg-quick feature; linker's daemon ignores it", path, number, key)
            continue
        known = _INTERFACE_KEYS if section.kind == "interface" else _PEER_KEYS
        if key_l not in known:
            # echo only a plain name: anything else may be a key pasted in the wrong form
            name = repr(key) if key.isalnum() and len(key) <= 32 else "(not shown)"
            raise ConfigError(f"unknown key {name} in [{section.kind.capitalize()}]", path=path, line=number,
                              fix="lines are 'Key = value'")
        if key_l in _LIST_KEYS:
            section.lists.setdefault(key_l, []).append((value, number))
        elif key_l in section.values:
            raise ConfigError(f"{key} is given twice", path=path, line=number)
        else:
            section.values[key_l] = (value, number)
    interfaces = [s for s in sections if s.kind == "interface"]
    if not interfaces:
        raise ConfigError("no [Interface] section", path=path, fix="add [Interface] with PrivateKey = ...")
    iface = _interface(interfaces[0], path)
    peers = tuple(_peer(s, path) for s in sections if s.kind == "peer")
    seen: dict[bytes, int] = {}
    for p in peers:
        if p.public_key in seen:
            raise ConfigError(f"this peer's PublicKey is also the peer's at line {seen[p.public_key]}", path=path,
                              line=p.line)
        seen[p.public_key] = p.line
    return DaemonConfig(iface, peers, path)


def _key(value: str, what: str, path: str, line: int) -> bytes:
    try:
        return from_base64(value)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}", path=path, line=line, fix="generate keys with `linker genkey` / "
                          "`linker pubkey` (or wg genkey)") from None


def _int(value: str, what: str, low: int, high: int, path: str, line: int) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise ConfigError(f"{what} must be a number, not {value!r}", path=path, line=line) from None
    if not low <= n <= high:
        raise ConfigError(f"{what} must be between {low} and {high}, not {n}", path=path, line=line)
    return n


def _split(entries: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(item.strip(), line) for value, line in entries for item in value.split(",") if item.strip()]


def _interface(s: _Section, path: str) -> InterfaceConfig:
    if "privatekey" not in s.values:
        raise ConfigError("[Interface] has no PrivateKey", path=path, line=s.line,
                          fix="add PrivateKey = $(linker genkey)")
    private = _key(s.values["privatekey"][0], "PrivateKey", path, s.values["privatekey"][1])
    port = 0
    if "listenport" in s.values:
        v, ln = s.values["listenport"]
        port = _int(v, "ListenPort", 0, 65535, path, ln)
    mtu = DEFAULT_MTU
    if "mtu" in s.values:
        v, ln = s.values["mtu"]
        mtu = _int(v, "MTU", MIN_MTU, MAX_MTU, path, ln)
    fwmark = 0
    if "fwmark" in s.values:
        v, ln = s.values["fwmark"]
        fwmark = 0 if v.lower() == "off" else _int(v, "FwMark", 0, 0xFFFFFFFF, path, ln)
    manage_routes = True
    if "table" in s.values:
        v, ln = s.values["table"]
        if v.lower() == "off":
            manage_routes = False
        elif v.lower() != "auto":
            raise ConfigError(f"Table = {v} is not supported", path=path, line=ln,
                              fix="use Table = off (routes are yours) or auto (the daemon keeps them)")
    addresses = []
    for item, ln in _split(s.lists.get("address", [])):
        try:
            addresses.append(ipaddress.ip_interface(item))
        except ValueError:
            raise ConfigError(f"Address {item!r} is not an address with a prefix (10.0.0.1/24)", path=path,
                              line=ln) from None
    return InterfaceConfig(private, port, tuple(addresses), mtu, fwmark, manage_routes)


def _peer(s: _Section, path: str) -> PeerConfig:
    if "publickey" not in s.values:
        raise ConfigError("[Peer] has no PublicKey", path=path, line=s.line)
    public = _key(s.values["publickey"][0], "PublicKey", path, s.values["publickey"][1])
    psk = None
    if "presharedkey" in s.values:
        psk = _key(s.values["presharedkey"][0], "PresharedKey", path, s.values["presharedkey"][1])
    endpoint = None
    if "endpoint" in s.values:
        endpoint = parse_endpoint(*s.values["endpoint"], path=path)
    keepalive = 0
    if "persistentkeepalive" in s.values:
        v, ln = s.values["persistentkeepalive"]
        keepalive = 0 if v.lower() == "off" else _int(v, "PersistentKeepalive", 0, 65535, path, ln)
    nets: list[Network] = []
    for item, ln in _split(s.lists.get("allowedips", [])):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"AllowedIPs entry {item!r} is not a network (10.1.0.0/16)", path=path,
                              line=ln) from None
    return PeerConfig(public, psk, endpoint, tuple(nets), keepalive, s.line)


def split_host_port(value: str) -> tuple[str, str]:
    """``host:port`` or ``[v6]:port`` -> (host, port); raises ValueError."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("expected [address]:port")
        return host, rest[1:]
    host, sep, port = value.rpartition(":")
    if not sep or not host or ":" in host:
        raise ValueError("expected host:port (IPv6 in brackets: [2001:db8::1]:51820)")
    return host, port


def parse_endpoint(value: str, line: int = 0, path: str = "<config>") -> tuple[str, int]:
    """Resolve ``host:port`` to the (address, port) the core uses. Hostnames are resolved once, here."""
    try:
        host, port_s = split_host_port(value)
        port = int(port_s)
        if not 1 <= port <= 65535:
            raise ValueError("the port is 1..65535")
    except ValueError as exc:
        raise ConfigError(f"Endpoint {value!r}: {exc}", path=path, line=line or None) from None
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"Endpoint {value!r}: cannot resolve {host!r} ({exc})", path=path, line=line or None,
                          fix="check the name, or give an IP address") from None
    # prefer IPv4 as wg does, which keeps working where IPv6 has no route
    infos.sort(key=lambda i: i[0] != socket.AF_INET)
    return str(ipaddress.ip_address(infos[0][4][0])), port
