"""WireGuard endpoints inside a netlab ``Lab``: linker daemons (from a wg-quick file) and Debian's wireguard-go.

    with Lab("dp") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        na, nb = peered_pair(lab, a, "192.0.2.1", b, "192.0.2.2")   # 10.1.0.1/24 and 10.2.0.1/24, started

Interface names carry the lab's tag: the UAPI sockets live in /var/run/wireguard, which every namespace shares,
so two runs (or two tests) must never pick the same name. ``uapi_get`` asks a device for its state directly over
that socket, with the nanosecond handshake time that ``wg show`` rounds to seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.netns.netlab import LINKER, Lab, genkey, run, wait_for

SOCKET_DIR = Path("/var/run/wireguard")
PORT = 51820


@dataclass
class PeerEntry:
    """One [Peer] section."""

    public: str
    allowed_ips: str
    endpoint: str | None = None
    keepalive: int = 0

    def text(self) -> str:
        lines = ["[Peer]", f"PublicKey = {self.public}", f"AllowedIPs = {self.allowed_ips}"]
        if self.endpoint:
            lines.append(f"Endpoint = {self.endpoint}")
        if self.keepalive:
            lines.append(f"PersistentKeepalive = {self.keepalive}")
        return "\n".join(lines) + "\n"


@dataclass
class DumpPeer:
    """One peer line of `wg show IFACE dump`."""

    public: str
    preshared: str
    endpoint: str
    allowed_ips: str
    latest_handshake: int
    rx: int
    tx: int
    keepalive: str


@dataclass
class Node:
    """One tunnel endpoint: a namespace, its underlay address, a key pair and the wg interface it runs."""

    lab: Lab
    ns: str
    iface: str
    address: str  # inside the tunnel, with prefix: 10.1.0.1/24
    underlay: str  # the namespace's address the peers reach it at
    port: int = PORT
    priv: str = ""
    pub: str = ""
    peers: list[PeerEntry] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @classmethod
    def make(cls, lab: Lab, ns: str, name: str, address: str, underlay: str, port: int = PORT) -> Node:
        priv, pub = genkey()
        iface = f"lk{lab.tag}{name}"[-15:]
        lab.on_close(lambda: _remove_stale_socket(iface))
        return cls(lab, ns, iface, address, underlay, port, priv, pub)

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]

    @property
    def endpoint(self) -> str:
        return f"{self.underlay}:{self.port}"

    @property
    def conf(self) -> Path:
        return self.lab.dir / f"{self.iface}.conf"

    @property
    def log(self) -> Path:
        return self.lab.dir / f"{self.iface}.log"

    @property
    def socket(self) -> Path:
        return SOCKET_DIR / f"{self.iface}.sock"

    def as_peer(self, allowed_ips: str, endpoint: str | None = "", keepalive: int = 0) -> PeerEntry:
        """This node as a [Peer] of another; ``endpoint`` "" means its own underlay endpoint, None none."""
        return PeerEntry(self.pub, allowed_ips, self.endpoint if endpoint == "" else endpoint, keepalive)

    # ------------------------------------------------------------------ linker daemon

    def config_text(self) -> str:
        head = (f"[Interface]\nPrivateKey = {self.priv}\nListenPort = {self.port}\nAddress = {self.address}\n\n")
        return head + "\n".join(p.text() for p in self.peers)

    def write_config(self, mode: int = 0o600) -> Path:
        self.conf.write_text(self.config_text())
        self.conf.chmod(mode)
        return self.conf

    def start(self, write: bool = True, log_level: str = "debug", extra: Sequence[str] = (),
              offloads: str | None = None) -> subprocess.Popen:
        """Start `linker daemon` on this node's config (``extra``: more options; ``offloads``: its LINKER_OFFLOADS);
        returns once its UAPI socket answers."""
        if write:
            self.write_config()
        env = None if offloads is None else dict(os.environ, LINKER_OFFLOADS=offloads)
        self.proc = self.lab.spawn(self.ns, [*LINKER, "daemon", str(self.conf), "--interface", self.iface,
                                             "--log-level", log_level, *extra], log=self.log, env=env)
        self._wait_ready()
        return self.proc

    def _wait_ready(self) -> None:
        assert self.proc is not None
        ok = wait_for(lambda: self.proc.poll() is not None or _answers(self.socket), timeout=20)
        if not ok or self.proc.poll() is not None:
            raise AssertionError(f"{self.iface} did not come up (exit {self.proc.poll()}):\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        return self.lab.stop(self.proc, sig)

    def hup(self) -> None:
        assert self.proc is not None and self.proc.poll() is None
        # the daemon runs under `ip netns exec`, which execs it: this PID is the daemon itself
        self.proc.send_signal(signal.SIGHUP)

    def counters(self) -> dict[str, int]:
        """The daemon's counters, as it logs them on SIGUSR1."""
        assert self.proc is not None
        seen = self.log_text().count("counters:")
        self.proc.send_signal(signal.SIGUSR1)
        assert wait_for(lambda: self.log_text().count("counters:") > seen, timeout=5)
        line = [ln for ln in self.log_text().splitlines() if "counters:" in ln][-1]
        fields = (f.partition("=") for f in line.split("counters:", 1)[1].split())
        return {k: int(v) for k, _, v in fields if v.isdigit()}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # ------------------------------------------------------------------ wireguard-go

    def start_wireguard_go(self, log_level: str = "error") -> subprocess.Popen:
        """Run Debian's wireguard-go on this node and configure it with `wg` as linker's config would be."""
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1", LOG_LEVEL=log_level)
        self.proc = self.lab.spawn(self.ns, ["wireguard-go", "-f", self.iface], log=self.log, env=env)
        self._wait_ready()
        key = self.lab.dir / f"{self.iface}.key"
        key.write_text(self.priv + "\n")
        key.chmod(0o600)
        run(["wg", "set", self.iface, "private-key", str(key), "listen-port", str(self.port)], self.ns)
        for p in self.peers:
            self.wg_set_peer(p)
        run(["ip", "addr", "add", self.address, "dev", self.iface], self.ns)
        run(["ip", "link", "set", self.iface, "up"], self.ns)
        for p in self.peers:
            for net in p.allowed_ips.split(","):
                run(["ip", "route", "replace", net.strip(), "dev", self.iface], self.ns)
        return self.proc

    def wg_set_peer(self, p: PeerEntry) -> None:
        argv = ["wg", "set", self.iface, "peer", p.public, "allowed-ips", p.allowed_ips]
        if p.endpoint:
            argv += ["endpoint", p.endpoint]
        if p.keepalive:
            argv += ["persistent-keepalive", str(p.keepalive)]
        run(argv, self.ns)

    # ------------------------------------------------------------------ observing

    def dump(self) -> dict[str, DumpPeer]:
        """`wg show IFACE dump`, peers by public key (base64)."""
        lines = run(["wg", "show", self.iface, "dump"], self.ns).stdout.strip().splitlines()
        peers = {}
        for line in lines[1:]:
            f = line.split("\t")
            peers[f[0]] = DumpPeer(f[0], f[1], f[2], f[3], int(f[4]), int(f[5]), int(f[6]), f[7])
        return peers

    def uapi(self) -> dict[str, dict[str, str]]:
        return uapi_get(self.socket)

    def routes(self) -> str:
        return run(["ip", "route", "show", "dev", self.iface], self.ns, check=False).stdout


def _answers(path: Path) -> bool:
    try:
        uapi_get(path)
        return True
    except OSError:
        return False


def _remove_stale_socket(iface: str) -> None:
    """After a killed daemon: remove its socket file, if no process answers there any more."""
    path = SOCKET_DIR / f"{iface}.sock"
    if path.exists() and not _answers(path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def uapi_get(path: Path, timeout: float = 2.0) -> dict[str, dict[str, str]]:
    """``get=1`` over a UAPI socket -> {"": device keys, "<public key hex>": that peer's keys}."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(b"get=1\n\n")
        buf = b""
        while not buf.endswith(b"\n\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    out: dict[str, dict[str, str]] = {"": {}}
    current = out[""]
    status = None
    for line in buf.decode().splitlines():
        key, _, value = line.partition("=")
        if key == "errno":
            status = value
        elif key == "public_key":
            current = out.setdefault(value, {})
        elif key == "allowed_ip":
            current[key] = (current.get(key, "") + "," + value).lstrip(",")
        elif key:
            current[key] = value
    if status != "0":
        raise OSError(f"uapi get failed: {buf[-40:]!r}")
    return out


def handshake_ns(state: dict[str, dict[str, str]], public_hex: str) -> int:
    """A peer's last handshake in nanoseconds since the epoch (0: never), from ``uapi_get``."""
    peer = state[public_hex]
    return int(peer["last_handshake_time_sec"]) * 1_000_000_000 + int(peer["last_handshake_time_nsec"])


def b64_to_hex(key: str) -> str:
    import base64

    return base64.b64decode(key).hex()


def peered_pair(lab: Lab, ns_a: str, underlay_a: str, ns_b: str, underlay_b: str, *, keepalive: int = 0,
                endpoints: tuple[str | None, str | None] = ("", ""), log_level: str = "info",
                start: bool = True) -> tuple[Node, Node]:
    """Linker daemons ``a`` (10.1.0.1/24) and ``b`` (10.2.0.1/24) peered with each other, started unless told.

    ``endpoints``: what each side is told of the other ("" its underlay endpoint, None none, else host:port)."""
    na = Node.make(lab, ns_a, "a", "10.1.0.1/24", underlay_a)
    nb = Node.make(lab, ns_b, "b", "10.2.0.1/24", underlay_b)
    na.peers = [nb.as_peer("10.2.0.0/24", endpoint=endpoints[0], keepalive=keepalive)]
    nb.peers = [na.as_peer("10.1.0.0/24", endpoint=endpoints[1], keepalive=keepalive)]
    if start:
        na.start(log_level=log_level)
        nb.start(log_level=log_level)
    return na, nb


def third_site(lab: Lab, near: Node, name: str) -> Node:
    """Node ``name`` (10.3.0.1/24) behind a second underlay link of ``near``'s namespace (198.51.100.0/24), already
    peered with ``near`` (10.1.0.0/24); ``near`` does not know it yet. Not started: a daemon or wireguard-go."""
    ns = lab.host(name)
    lab.link(near.ns, "198.51.100.1/24", ns, "198.51.100.3/24")
    node = Node.make(lab, ns, name, "10.3.0.1/24", "198.51.100.3")
    node.peers = [near.as_peer("10.1.0.0/24", endpoint="198.51.100.1:51820")]
    return node
