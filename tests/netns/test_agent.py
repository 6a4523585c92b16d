"""The gateway agent for real: `linker gateway run` in network namespaces, against a moto server.

    net    (203.0.113.254 on a bridge; the AWS endpoint 192.0.2.10:80 is moto, served from this process)
     |-- gw-a 203.0.113.1  -- h-a 10.1.0.10   site us-east-1,      VPC 10.1.0.0/16
     |-- gw-b 203.0.113.2  -- h-b 10.2.0.10   site eu-west-1,      VPC 10.2.0.0/16
     |-- gw-c 203.0.113.3  -- h-c 10.3.0.10   site ap-southeast-2, VPC 10.3.0.0/16 (later moves to .33)

Each gateway namespace runs the agent as the systemd unit does (the venv's `linker gateway run --config ...`, its
settings rendered by the controller's own template code), with its own state and run directories and interface
name. The membership document is written by the controller's Applier (the code `linker up` runs), so the test
proves the contract between the two sides, not a copy of it. All traffic stays inside the namespaces made here
and on this machine's loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from linker import naming
from linker.control.apply import Applier
from linker.control.aws import Clients, Target
from linker.control.changes import Change, Phase
from linker.control.render import GatewayInputs, agent_settings
from linker.wg.keys import from_base64, public_key_of
from tests.netns.daemons import _remove_stale_socket, handshake_ns, uapi_get
from tests.netns.netlab import Lab, run, transfer, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.slow]

LINK = "agentlab"
A, B, C = "us-east-1", "eu-west-1", "ap-southeast-2"
UNDERLAY = {A: "203.0.113.1", B: "203.0.113.2", C: "203.0.113.3"}
MOVED = "203.0.113.33"  # C's new Elastic IP
CIDR = {A: "10.1.0.0/16", B: "10.2.0.0/16", C: "10.3.0.0/16"}
HOST = {A: "10.1.0.10", B: "10.2.0.10", C: "10.3.0.10"}
AWS_ADDRESS = "192.0.2.10"
PORT = 51820
LINKER_BIN = str(Path(sys.executable).parent / "linker")  # the console script, as the unit's ExecStart
KEEPS_LAST_GOOD = "keeping the last good configuration"
SIZE = 2 << 20


@dataclass
class Gateway:
    lab: Lab
    site: str
    ns: str
    host_ns: str
    iface: str
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    daemon_pids: tuple[int, ...] = ()

    @property
    def dir(self) -> Path:
        return self.lab.dir / self.site

    @property
    def config(self) -> Path:
        return self.dir / "agent.json"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def log(self) -> Path:
        return self.dir / "agent.log"

    @property
    def socket(self) -> Path:
        return Path("/var/run/wireguard") / f"{self.iface}.sock"

    def write_settings(self) -> None:
        """The controller's rendering of /etc/linker/agent.json, plus this lab's paths and short intervals."""
        inputs = GatewayInputs(LINK, self.site, self.site, PORT, "linker-bucket", "wheels/0/linker.whl", "0" * 64,
                               interface=self.iface)
        doc = json.loads(agent_settings(inputs))
        doc.update(state_dir=str(self.state_dir), run_dir=str(self.run_dir), poll_interval=1.0,
                   health_interval=1.0, max_backoff=4.0)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps(doc))

    def start(self) -> None:
        self.proc = self.lab.spawn(self.ns, [LINKER_BIN, "gateway", "run", "--config", str(self.config),
                                             "--log-level", "debug"], log=self.log, env=self.env)
        assert wait_for(lambda: self.daemon_pid() is not None and self.answers(), 30), self.why()

    def stop(self) -> float:
        """SIGTERM the agent (as systemd stops it); returns how long it took to exit."""
        assert self.proc is not None
        t0 = time.monotonic()
        code = self.lab.stop(self.proc, timeout=30)
        assert code == 0, f"agent of {self.site} exited {code}\n{self.why()}"
        return time.monotonic() - t0

    def daemon_pid(self) -> int | None:
        """The PID of the `linker daemon` the agent supervises (its child), None when it has none."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for pid in (task / "children").read_text().split():
                    if self.iface in _cmdline(int(pid)):
                        self.daemon_pids = tuple(sorted({*self.daemon_pids, int(pid)}))
                        return int(pid)
        return None

    def answers(self) -> bool:
        try:
            uapi_get(self.socket)
            return True
        except OSError:
            return False

    def peers(self) -> dict[str, dict[str, str]]:
        """The daemon's peers (UAPI get), by public key (hex)."""
        return {k: v for k, v in uapi_get(self.socket).items() if k}

    def private_key(self) -> bytes:
        return from_base64((self.state_dir / "private.key").read_text())

    def public_hex(self) -> str:
        return public_key_of(self.private_key()).hex()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def why(self) -> str:
        return f"--- agent log of {self.site} (last 40 lines) ---\n" + "\n".join(self.log_text().splitlines()[-40:])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stop_orphans(gateways: list[Gateway]) -> None:
    """A daemon whose agent was killed outright would outlive it: stop it by the PID seen, if it is still ours."""
    for gw in gateways:
        for pid in gw.daemon_pids:
            if gw.iface in _cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                wait_for(lambda pid=pid, name=gw.iface: name not in _cmdline(pid), 5)
        _remove_stale_socket(gw.iface)


def _agent_env(region: str, endpoint: str) -> dict[str, str]:
    """The unit's environment (AWS_REGION) with the sandbox's endpoint and dummy credentials; no proxy, no profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()}
    env.update(AWS_REGION=region, AWS_DEFAULT_REGION=region, AWS_ENDPOINT_URL=endpoint,
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 (moto's dummy)
               AWS_CONFIG_FILE="/nonexistent",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true")
    return env


class Controller:
    """Writes the membership the way `linker up` does: the Applier's membership change, in each region named."""

    def __init__(self, url: str) -> None:
        self.clients = Clients(Target(None, url))

    def membership(self, sites: dict[str, str], regions: list[str]) -> None:
        entries = tuple((s, s, eip, (CIDR[s],), PORT) for s, eip in sorted(sites.items()))
        changes = [Change(r, r, Phase.MEMBERSHIP, "update", "membership", naming.membership_parameter(LINK),
                          (("entries", entries),)) for r in regions]
        Applier(self.clients, LINK, "agent-test").apply(changes)

    def parameter(self, region: str, name: str) -> str | None:
        try:
            return self.clients.ssm(region).get_parameter(Name=name)["Parameter"]["Value"]
        except self.clients.ssm(region).exceptions.ParameterNotFound:
            return None


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    for k, v in _agent_env(A, "").items():
        if k.startswith("AWS_") and k != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(k, v)


def _build(lab: Lab) -> tuple[str, dict[str, tuple[str, str]]]:
    """The namespaces: the internet (with the AWS endpoint's address) and a gateway and a host per site."""
    net = lab.host("net")
    run(["ip", "link", "add", "br0", "type", "bridge"], net)
    run(["ip", "addr", "add", "203.0.113.254/24", "dev", "br0"], net)
    run(["ip", "link", "set", "br0", "up"], net)
    run(["ip", "addr", "add", f"{AWS_ADDRESS}/32", "dev", "lo"], net)
    out = {}
    for i, site in enumerate((A, B, C)):
        gw, host = lab.host(f"g{i}"), lab.host(f"h{i}")
        _, br_end = lab.link(gw, f"{UNDERLAY[site]}/24", net, None)
        run(["ip", "link", "set", br_end, "master", "br0"], net)
        run(["ip", "route", "add", "default", "via", "203.0.113.254"], gw)
        lab.link(gw, f"{CIDR[site].replace('0.0/16', '0.1')}/24", host, f"{HOST[site]}/24")
        run(["ip", "route", "add", "default", "via", CIDR[site].replace("0.0/16", "0.1")], host)
        out[site] = (gw, host)
    return net, out


def _xfer(lab: Lab, src: Gateway, dst: Gateway, port: int) -> float:
    sent, received, seconds = transfer(lab, dst.host_ns, HOST[dst.site], src.host_ns, SIZE, port=port, timeout=60)
    assert sent == received, f"{src.site} -> {dst.site}: checksums differ"
    return seconds


def _stable_handshake(gw: Gateway, peer_hex: str) -> int:
    """A peer's handshake time (ns) once it has stopped moving (both sides may have initiated at first)."""
    last = -1
    for _ in range(20):
        now = handshake_ns(uapi_get(gw.socket), peer_hex)
        if now == last and now > 0:
            return now
        last = now
        time.sleep(0.5)
    raise AssertionError(f"{gw.site}: the handshake with {peer_hex[:8]} keeps changing or never happened")


def _blackhole_aws(net: str) -> None:
    """AWS unreachable: the endpoint's address silently drops the gateways' packets (timeouts, not refusals)."""
    run(["nft", "-f", "-"], net, input=(
        "table inet lkt_noaws {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
        f"    ip daddr {AWS_ADDRESS} tcp dport 80 drop\n  }}\n}}\n"))


def _metrics(ns: str) -> str:
    url = "http://127.0.0.1:9586/metrics"  # the agent's default port, on the namespace's own loopback
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    return run([sys.executable, "-c", code], ns, timeout=20).stdout


def _underlay_iface(ns: str) -> str:
    """The gateway's interface on the internet bridge (the one with a TEST-NET-3 address)."""
    for line in run(["ip", "-o", "-4", "addr", "show"], ns).stdout.splitlines():
        if " 203.0.113." in line:
            return line.split()[1]
    raise AssertionError(f"{ns} has no underlay address")


def test_agent_without_aws_runs_its_daemon_and_stops_at_once() -> None:
    """First boot with the AWS endpoint silent (its packets vanish): the daemon runs (no peers yet), and SIGTERM
    is obeyed at once, not after the pending AWS call times out (seconds: 2 attempts x 3 s connect)."""
    with Lab("ag") as lab:
        ns, sink = lab.host("g"), lab.host("s")
        # a route to the endpoint, whose frames go to a MAC nobody has: they vanish, as in a blackhole
        dev, _ = lab.link(ns, "192.0.2.1/24", sink, None)
        run(["ip", "neigh", "replace", AWS_ADDRESS, "lladdr", "02:00:00:00:00:99", "dev", dev, "nud", "permanent"],
            ns)
        gw = Gateway(lab, A, ns, ns, f"lk{lab.tag}a"[-15:], _agent_env(A, f"http://{AWS_ADDRESS}:80"))
        lab.on_close(lambda: _stop_orphans([gw]))
        gw.write_settings()
        gw.start()
        assert gw.peers() == {}
        syn_sent = ["ss", "-Htn", "state", "syn-sent", "dst", AWS_ADDRESS]
        assert wait_for(lambda: run(syn_sent, ns).stdout.strip() != "", 10), gw.why()  # it waits on AWS now
        took = gw.stop()
        assert took < 2, f"stopping took {took:.1f} s\n{gw.why()}"
        assert "that call is abandoned" in gw.log_text(), gw.why()
        assert not gw.answers() and not any(gw.iface in _cmdline(p) for p in gw.daemon_pids)
