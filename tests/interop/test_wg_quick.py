"""``linker-wg`` as wg-quick's userspace implementation, against Debian's wireguard-go brought up by wg-quick too.

Debian's own wg-quick does everything here (keys, addresses, routes, policy rules, fwmark, hooks, syncconf); the
kernel has no WireGuard module, so wg-quick runs ``$WG_QUICK_USERSPACE_IMPLEMENTATION IFACE`` (linker-wg on ``l``)
or wireguard-go (on ``g``). Underlay TEST-NET 192.0.2.0/24, tunnel 10.77.0.0/24, a "server LAN" 198.51.100.0/24
behind ``g``; all in namespaces of this test.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from linker.sandbox import netns
from tests.netns.netlab import Lab, genkey, ping, run, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.interop]

LINKER_WG = Path(sys.executable).parent / "linker-wg"
PORT = 51820


@dataclass
class Side:
    lab: Lab
    ns: str
    iface: str
    priv: str
    pub: str
    underlay: str
    tunnel: str
    implementation: str | None  # None: wg-quick's default (wireguard-go)

    @property
    def conf(self) -> Path:
        return self.lab.dir / f"{self.iface}.conf"

    @property
    def log(self) -> Path:
        return self.lab.dir / f"{self.iface}.log"

    def write(self, peer: Side, allowed: str, extra: str = "") -> None:
        self.conf.write_text(
            f"[Interface]\nPrivateKey = {self.priv}\nAddress = {self.tunnel}/24\nListenPort = {PORT}\n{extra}\n"
            f"[Peer]\nPublicKey = {peer.pub}\nEndpoint = {peer.underlay}:{PORT}\nAllowedIPs = {allowed}\n")
        self.conf.chmod(0o600)

    def wg_quick(self, *args: str, check: bool = True) -> int:
        """wg-quick inside the namespace, its output (and the backgrounded daemon's) to the side's log file: a
        daemon that keeps a pipe of ours open would make us wait for it."""
        env = f"WG_QUICK_USERSPACE_IMPLEMENTATION={shlex.quote(str(self.implementation))} " \
            if self.implementation else ""
        cmd = f"{env}wg-quick {' '.join(shlex.quote(a) for a in args)} >>{shlex.quote(str(self.log))} 2>&1"
        done = run(["bash", "-c", cmd], self.ns, check=False, timeout=60)
        assert not check or done.returncode == 0, f"wg-quick {args} failed:\n{self.log.read_text()}"
        return done.returncode

    def up(self) -> None:
        self.wg_quick("up", str(self.conf))

    def down(self) -> None:
        self.wg_quick("down", str(self.conf))

    def show(self, what: str) -> str:
        return run(["wg", "show", self.iface, what], self.ns).stdout.strip()

    def present(self) -> bool:
        return run(["ip", "link", "show", self.iface], self.ns, check=False).returncode == 0

    def daemon_pids(self) -> list[int]:
        """The processes in this side's namespace (the test made it: they are the daemon and nothing else)."""
        return netns.pids_in(self.ns)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Side, Side]]:
    if shutil.which("wg-quick") is None or shutil.which("wireguard-go") is None:
        pytest.skip("wg-quick or wireguard-go is not installed (apt-get install wireguard-tools wireguard-go)")
    with Lab("wq", tmp_path) as lab:
        ln, gn = lab.host("l"), lab.host("g")
        lab.link(ln, "192.0.2.1/24", gn, "192.0.2.2/24")
        run(["ip", "addr", "add", "198.51.100.1/32", "dev", "lo"], gn)  # the LAN behind g (no dummy module here)
        tag = lab.tag[-8:]
        l_priv, l_pub = genkey()
        g_priv, g_pub = genkey()
        lk = Side(lab, ln, f"lq{tag}", l_priv, l_pub, "192.0.2.1", "10.77.0.1", str(LINKER_WG))
        go = Side(lab, gn, f"gq{tag}", g_priv, g_pub, "192.0.2.2", "10.77.0.2", None)
        # wg-quick down before the namespaces go: the daemons stop when their interfaces do
        lab.on_close(lambda: [s.wg_quick("down", str(s.conf), check=False) for s in (lk, go) if s.present()])
        yield lk, go


def test_a_site_config_comes_up_carries_traffic_and_goes_down(pair: tuple[Side, Side]) -> None:
    lk, go = pair
    marks = lk.lab.dir
    lk.write(go, "10.77.0.2/32, 198.51.100.0/24",
             f"PostUp = touch {marks}/postup-%i\nPreDown = wg show %i > {marks}/predown-%i\n")
    go.write(lk, "10.77.0.1/32")
    go.up()
    lk.up()
    assert (marks / f"postup-{lk.iface}").exists(), "wg-quick ran PostUp after linker-wg made the device"
    assert lk.show("public-key") == lk.pub and lk.show("listen-port") == str(PORT)
    assert ping(lk.ns, "10.77.0.2") and ping(lk.ns, "198.51.100.1"), lk.log.read_text()
    assert ping(go.ns, "10.77.0.1")
    # wireguard-go agrees: the peer it knows as linker has handshaked
    assert lk.pub in go.show("latest-handshakes") and "0" != go.show("latest-handshakes").split()[-1]
    pids = lk.daemon_pids()
    assert len(pids) == 1, f"linker-wg forked to the background, one process: {pids}"
    lk.down()
    assert "peer:" in (marks / f"predown-{lk.iface}").read_text(), "PreDown ran while the device was still there"
    assert not lk.present()
    assert wait_for(lambda: not lk.daemon_pids(), 10), "linker-wg exits when wg-quick deletes its interface"
    assert not Path(f"/var/run/wireguard/{lk.iface}.sock").exists()
    # and up again, as after a reboot
    lk.up()
    assert ping(lk.ns, "10.77.0.2"), lk.log.read_text()


def test_a_full_tunnel_config_does_not_route_its_own_packets_into_itself(pair: tuple[Side, Side]) -> None:
    """AllowedIPs 0.0.0.0/0: wg-quick gives the daemon a fwmark, a policy rule and a table of its own; the
    daemon's UDP socket must carry the mark, or its encrypted packets would loop back into the tunnel."""
    lk, go = pair
    lk.write(go, "0.0.0.0/0")
    go.write(lk, "10.77.0.1/32")
    go.up()
    lk.up()
    mark = lk.show("fwmark")
    assert mark not in ("", "off"), "wg-quick set a fwmark (Table=auto with a default route)"
    rules = run(["ip", "-4", "rule", "show"], lk.ns).stdout
    assert f"not from all fwmark {mark}" in rules or "not fwmark" in rules, rules
    # everything but the underlay peer goes through the tunnel: the LAN behind g, g's tunnel address
    assert ping(lk.ns, "198.51.100.1"), lk.log.read_text()
    assert ping(lk.ns, "10.77.0.2")
    route = run(["ip", "-4", "route", "get", "198.51.100.1"], lk.ns).stdout
    assert lk.iface in route, route
    transfer = lk.show("transfer").split()
    assert int(transfer[1]) > 0 and int(transfer[2]) > 0, transfer
    lk.down()
    assert "lookup" not in run(["ip", "-4", "rule", "show"], lk.ns).stdout.replace("lookup main", "") \
        .replace("lookup local", "").replace("lookup default", ""), "wg-quick down removed its rules"


def test_syncconf_of_a_stripped_config_keeps_the_session(pair: tuple[Side, Side]) -> None:
    lk, go = pair
    lk.write(go, "10.77.0.2/32")
    go.write(lk, "10.77.0.1/32")
    go.up()
    lk.up()
    assert ping(lk.ns, "10.77.0.2")
    before = lk.show("latest-handshakes").split()[-1]
    lk.write(go, "10.77.0.2/32, 198.51.100.0/24")  # the LAN behind g joins
    cmd = f"wg syncconf {lk.iface} <(wg-quick strip {shlex.quote(str(lk.conf))})"
    run(["bash", "-c", cmd], lk.ns)
    assert "198.51.100.0/24" in lk.show("allowed-ips")
    run(["ip", "route", "add", "198.51.100.0/24", "dev", lk.iface], lk.ns)  # wg-quick adds routes only at up
    assert ping(lk.ns, "198.51.100.1"), lk.log.read_text()
    assert lk.show("latest-handshakes").split()[-1] == before, "syncconf kept the session: no new handshake"
