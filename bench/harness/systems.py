"""The systems under test: each builds its tunnel between the two namespaces and takes it down again.

A ``System`` is set up and torn down once per round, so no idle daemon of another system runs while one is
measured. ``setup`` returns once traffic flows through the tunnel, with the PIDs whose CPU time counts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from bench.harness.keys import WgKeys, tls_identity, wg_keypair
from bench.harness.ns import Underlay, reachable, route_dev, run
from bench.harness.procs import ProcessTable, wait_for

REPO = Path(__file__).resolve().parents[2]
TUNNEL_UP_TIMEOUT = 30.0  # seconds; OpenVPN's TLS handshake retries after 2 s, WireGuard's after 5 s


class SetupError(Exception):
    """A system could not bring its tunnel up; the message says why (with the daemon's last log lines)."""


@dataclass(frozen=True)
class Context:
    """What every system shares within one run: the process table, a private scratch directory, the run tag, and
    the checkout whose linker daemon ``linker-baseline`` runs (None: not given)."""

    procs: ProcessTable
    workdir: Path
    tag: str
    baseline: Path | None = None


class System(ABC):
    """One tunnel implementation. Not thread-safe. ``teardown`` never raises and may be called more than once."""

    name: ClassVar[str]  # the --systems key
    label: ClassVar[str]  # for tables and charts
    short: ClassVar[str]  # one letter in device names
    inner: ClassVar[int] = 0  # tunnel subnet 10.201.<inner>.0/24 (a distinct one per system, for readable logs)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pids: list[int] = []
        self.sides: dict[int, str] = {}  # pid -> "a" or "b"
        self.commands: list[list[str]] = []
        self.target = ""  # the address in ns_b that traffic through this system is sent to

    def available(self) -> str | None:
        """None when the system can run here, else the reason it cannot."""
        return None

    @abstractmethod
    def setup(self, net: Underlay) -> list[int]:
        """Bring the tunnel up between ``net.ns_a`` and ``net.ns_b``; returns the daemons' PIDs. Raises SetupError."""

    def teardown(self) -> None:
        """Stop this system's daemons (by PID); their tunnel devices go with them."""
        for pid in self.pids:
            self.ctx.procs.stop(pid)
        self.pids = []
        self.sides = {}

    # helpers for subclasses

    def addr(self, side: str) -> str:
        return f"10.201.{self.inner}.{1 if side == 'a' else 2}"

    def iface(self, side: str) -> str:
        """A device name unique to this run and side: the UAPI socket directory is shared by all namespaces."""
        return f"lkb-{self.ctx.tag}-{self.short}{side}"

    def log(self, side: str) -> Path:
        return self.ctx.workdir / f"{self.name}-{side}.log"

    def start(self, argv: list[str], ns: str, side: str, env: dict[str, str] | None = None,
              cwd: Path = REPO) -> int:
        proc = self.ctx.procs.spawn(argv, ns=ns, log=self.log(side), env=env, cwd=cwd)
        self.pids.append(proc.pid)
        self.sides[proc.pid] = side
        self.commands.append(argv)
        return proc.pid

    def check_alive(self) -> None:
        """Raise SetupError, with the dead daemon's log, if one of ours has exited."""
        for pid, side in self.sides.items():
            if not self.ctx.procs.alive(pid):
                raise SetupError(f"{self.name} daemon in ns {side} exited: {tail(self.log(side))}")

    def wait_tunnel(self, net: Underlay) -> None:
        """Wait until a ping from ns_a to the target is answered, and check it is routed into the tunnel device."""
        deadline = time.monotonic() + TUNNEL_UP_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            if reachable(net.ns_a, self.target):
                dev = route_dev(net.ns_a, self.target)
                if dev != self.iface("a"):
                        raise SetupError(f"{self.name}: {self.target} goes via {dev}, not the tunnel {self.iface('a')}")
                return
        raise SetupError(f"{self.name}: no ping through the tunnel after {TUNNEL_UP_TIMEOUT:.0f} s: "
                         f"{tail(self.log('a'))} | {tail(self.log('b'))}")


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log file, on one line, for an error message."""
    try:
        return " / ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty log)"
    except FileNotFoundError:
        return "(no log)"


class Raw(System):
    """No tunnel: iperf3 and ping straight over the veth. The ceiling of the machine."""

    name = "raw"
    label = "raw veth"
    short = "r"

    def setup(self, net: Underlay) -> list[int]:
        self.target = net.addr_b
        return []


@dataclass(frozen=True)
class WgSide:
    """One end of a WireGuard-protocol tunnel."""

    keys: WgKeys
    port: int
    address: str


def wg_config(me: WgSide, peer: WgSide, endpoint: str, *, quick: bool) -> str:
    """A wg-quick config for ``me`` (``quick``), or the subset ``wg setconf`` takes (no Address, no MTU)."""
    interface = [f"PrivateKey = {me.keys.private}", f"ListenPort = {me.port}"]
    if quick:
        interface += [f"Address = {me.address}/24", "MTU = 1420"]
    return "\n".join([
        "[Interface]", *interface, "",
        "[Peer]", f"PublicKey = {peer.keys.public}", f"Endpoint = {endpoint}:{peer.port}",
        f"AllowedIPs = {peer.address}/32", "PersistentKeepalive = 25", "",
    ])


class WireGuardPair(System, ABC):
    """Two daemons speaking the WireGuard protocol, one per namespace, each pointing at the other's underlay."""

    port: ClassVar[int]
    wg_quick: ClassVar[bool]  # whether the daemon reads a wg-quick file (Address, MTU) or wg setconf's subset

    def configs(self, net: Underlay) -> list[tuple[str, str, Path]]:
        """(side, namespace, config path) for both ends, with the config files written (0600: keys inside)."""
        a = WgSide(wg_keypair(), self.port, self.addr("a"))
        b = WgSide(wg_keypair(), self.port, self.addr("b"))
        out = []
        for side, ns, me, peer, endpoint in (("a", net.ns_a, a, b, net.addr_b), ("b", net.ns_b, b, a, net.addr_a)):
            path = self.ctx.workdir / f"{self.name}-{side}.conf"
            path.touch(0o600)
            path.write_text(wg_config(me, peer, endpoint, quick=self.wg_quick))
            out.append((side, ns, path))
        self.target = b.address
        return out

    def teardown(self) -> None:
        super().teardown()
        # a daemon that had to be SIGKILLed leaves its UAPI socket behind in the shared /var/run
        for side in "ab":
            Path(f"/var/run/wireguard/{self.iface(side)}.sock").unlink(missing_ok=True)


class WireGuardGo(WireGuardPair):
    """Debian's wireguard-go, configured with ``wg setconf`` and ``ip``."""

    name = "wireguard-go"
    label = "wireguard-go"
    short = "g"
    inner = 1
    port = 51820
    wg_quick = False

    def available(self) -> str | None:
        for tool in ("wireguard-go", "wg"):
            if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
                return f"{tool} not installed (apt-get install --no-install-recommends wireguard-go wireguard-tools)"
        return None

    def setup(self, net: Underlay) -> list[int]:
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1")
        for side, ns, conf in self.configs(net):
            dev = self.iface(side)
            self.start(["wireguard-go", "-f", dev], ns, side, env=env)
            sock = Path(f"/var/run/wireguard/{dev}.sock")
            if not wait_for(sock.exists, 10):
                self.check_alive()
                raise SetupError(f"wireguard-go made no UAPI socket {sock}")
            run(["wg", "setconf", dev, str(conf)], ns=ns)
            run(["ip", "addr", "add", f"{self.addr(side)}/24", "dev", dev], ns=ns)
            run(["ip", "link", "set", dev, "mtu", "1420", "up"], ns=ns)
        self.wait_tunnel(net)
        return list(self.pids)


class Linker(WireGuardPair):
    """linker's own daemon, ``python -m linker daemon CONF --interface NAME``, which sets address and MTU itself."""

    name = "linker"
    label = "linker"
    short = "l"
    inner = 2
    port = 51821
    wg_quick = True

    def tree(self) -> Path | None:
        """The checkout whose ``linker`` package the daemon runs."""
        return REPO

    def _run_from(self, tree: Path) -> tuple[dict[str, str], Path]:
        """Environment and working directory that make this Python import ``linker`` from ``tree``: ``-m`` puts
        the working directory first on sys.path, ahead of the editable install of this checkout."""
        return dict(os.environ, PYTHONPATH=str(tree)), tree

    def available(self) -> str | None:
        tree = self.tree()
        if tree is None:
            return "no checkout to run (--baseline-tree PATH)"
        env, cwd = self._run_from(tree)
        res = subprocess.run([sys.executable, "-m", "linker", "daemon", "--help"], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=60, check=False)
        if res.returncode:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            return f"`python -m linker daemon --help` in {tree} failed: {last}"
        return None

    def setup(self, net: Underlay) -> list[int]:
        tree = self.tree()
        assert tree is not None, "setup of a system that is not available"
        env, cwd = self._run_from(tree)
        for side, ns, conf in self.configs(net):
            self.start([sys.executable, "-m", "linker", "daemon", str(conf), "--interface", self.iface(side)], ns, side,
                       env=env, cwd=cwd)
        self.wait_tunnel(net)
        return list(self.pids)


class LinkerBaseline(Linker):
    """linker's daemon from another checkout (``--baseline-tree``, e.g. a ``git worktree`` of an older commit), run by
    this checkout's Python: a change measured before and after in one run, under the same conditions."""

    name = "linker-baseline"
    label = "linker (baseline)"
    short = "k"
    inner = 6
    port = 51823

    def tree(self) -> Path | None:
        return self.ctx.baseline


class PythonFloor(System):
    """A reference, not a tunnel: the least a CPython daemon does per packet (bench/harness/floor.py)."""

    name = "python-floor"
    label = "Python floor (no protocol)"
    short = "p"
    inner = 5
    port = 51822

    def setup(self, net: Underlay) -> list[int]:
        key = self.ctx.workdir / f"{self.name}.key"
        key.touch(0o600)
        key.write_text(os.urandom(32).hex())
        ends = (("a", net.ns_a, net.addr_a, net.addr_b), ("b", net.ns_b, net.addr_b, net.addr_a))
        for side, ns, local, remote in ends:
            self.start([sys.executable, "-m", "bench.harness.floor", self.iface(side), local, remote, str(self.port),
                        f"{self.addr(side)}/24", str(key)], ns, side)
        self.target = self.addr("b")
        self.wait_tunnel(net)
        return list(self.pids)


class OpenVpn(System, ABC):
    """OpenVPN 2.6 point-to-point over UDP on a TUN device; TLS with self-signed certificates pinned by fingerprint.

    Both ends list only ``cipher`` in --data-ciphers, and setup checks in the log that it was the one chosen.
    """

    cipher: ClassVar[str]
    port: ClassVar[int]

    def available(self) -> str | None:
        try:
            res = subprocess.run(["openvpn", "--version"], capture_output=True, text=True, timeout=10, check=False)
        except FileNotFoundError:
            return "openvpn not installed (apt-get install --no-install-recommends openvpn)"
        m = re.match(r"OpenVPN (\d+)\.(\d+)", res.stdout)
        if not m or (int(m[1]), int(m[2])) < (2, 6):
            return f"needs OpenVPN 2.6, found {res.stdout.splitlines()[0] if res.stdout else 'nothing'}"
        return None

    def setup(self, net: Underlay) -> list[int]:
        ids = {side: tls_identity(self.ctx.workdir, f"{self.name}-{side}") for side in "ab"}
        self.target = self.addr("b")
        # b is the TLS server and starts first, so a's first handshake packet finds it listening
        for side, ns, local, remote, peer in (("b", net.ns_b, net.addr_b, net.addr_a, "a"),
                                              ("a", net.ns_a, net.addr_a, net.addr_b, "b")):
            me = ids[side]
            argv = [
                "openvpn", "--dev", self.iface(side), "--dev-type", "tun", "--proto", "udp",
                "--local", local, "--lport", str(self.port), "--remote", remote, "--rport", str(self.port),
                "--ifconfig", self.addr(side), self.addr(peer),
                "--cert", str(me.cert), "--key", str(me.key), "--peer-fingerprint", ids[peer].fingerprint,
                "--data-ciphers", self.cipher, "--disable-dco", "--verb", "3", "--suppress-timestamps",
                *(["--tls-server", "--dh", "none"] if side == "b" else ["--tls-client"]),
            ]
            self.start(argv, ns, side)
        self.wait_tunnel(net)
        for side in "ab":
            log = self.log(side).read_text(errors="replace")
            if f"Data Channel: cipher '{self.cipher}'" not in log:
                raise SetupError(f"{self.name}: data channel did not use {self.cipher}: {tail(self.log(side), 8)}")
        return list(self.pids)


class OpenVpnAes(OpenVpn):
    name = "openvpn-aes"
    label = "OpenVPN AES-256-GCM"
    cipher = "AES-256-GCM"
    short = "o"
    inner = 3
    port = 1194


class OpenVpnChacha(OpenVpn):
    name = "openvpn-chacha"
    label = "OpenVPN CHACHA20-POLY1305"
    cipher = "CHACHA20-POLY1305"
    short = "c"
    inner = 4
    port = 1195


ALL: list[type[System]] = [Raw, Linker, WireGuardGo, OpenVpnAes, OpenVpnChacha, PythonFloor]  # the default run
BY_NAME: dict[str, type[System]] = {cls.name: cls for cls in [*ALL, LinkerBaseline]}
