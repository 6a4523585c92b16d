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
import stat
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
from linker.control.membership_doc import PlannedSite
from linker.control.operations import status_link
from linker.control.render import GatewayInputs, agent_settings
from linker.wg.keys import from_base64, public_key_of, to_base64
from tests.netns.awsns import MotoEndpoint
from tests.netns.daemons import _remove_stale_socket, handshake_ns, uapi_get
from tests.netns.netlab import REPO, Lab, ping, run, transfer, wait_for

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
        entries = tuple(PlannedSite(s, s, eip, (CIDR[s],), PORT) for s, eip in sorted(sites.items()))
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
    """This process's boto3 (the controller's code) gets moto's dummy credentials, never a real profile."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    for k, v in _agent_env(A, "unused").items():
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


def _mss_seen(lab: Lab, server: Gateway, client: Gateway, port: int) -> int:
    """The MSS the server host's TCP settles on for a connection from the client host, through the tunnel."""
    code = ("import socket,sys; s=socket.create_server((sys.argv[1], int(sys.argv[2]))); s.settimeout(20); "
            "c,_=s.accept(); print(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", server.host_ns, sys.executable, "-c", code, HOST[server.site], str(port)],
        stdout=subprocess.PIPE, text=True)
    lab.procs.append(proc)
    connect = ("import socket,sys,time\nfor _ in range(50):\n try: socket.create_connection((sys.argv[1], "
               "int(sys.argv[2])), timeout=5).close(); break\n except OSError: time.sleep(0.1)")
    run([sys.executable, "-c", connect, HOST[server.site], str(port)], client.host_ns, timeout=30)
    return int(proc.communicate(timeout=30)[0])


def _metrics(ns: str) -> str:
    url = "http://127.0.0.1:9586/metrics"  # the agent's default port, on the namespace's own loopback
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    return run([sys.executable, "-c", code], ns, timeout=20).stdout


def test_agent_against_moto_in_namespaces(aws_credentials: None) -> None:
    t_start = time.monotonic()
    timings: dict[str, float] = {}
    with Lab("ag") as lab:
        aws = MotoEndpoint()
        lab.on_close(aws.stop)
        url = aws.start_local()
        lab.on_close(aws.reset)
        net, spaces = _build(lab)
        inside = aws.start_inside(net, AWS_ADDRESS)
        ctl = Controller(url)
        gws = {site: Gateway(lab, site, gw, host, f"lk{lab.tag}{'abc'[i]}"[-15:], _agent_env(site, inside))
               for i, (site, (gw, host)) in enumerate(spaces.items())}
        lab.on_close(lambda: _stop_orphans(list(gws.values())))
        ga, gb, gc = gws[A], gws[B], gws[C]
        for gw in gws.values():
            gw.write_settings()
        try:
            # --- 1. first boot: the key is made on the host (0600) and only its public half reaches SSM
            ctl.membership({A: UNDERLAY[A]}, [A])
            ga.start()
            key_param = naming.public_key_parameter(LINK, A)
            assert wait_for(lambda: ctl.parameter(A, key_param) is not None, 15), ga.why()
            key_file = ga.state_dir / "private.key"
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            assert stat.S_IMODE(ga.state_dir.stat().st_mode) == 0o700
            assert from_base64(ctl.parameter(A, key_param)) == public_key_of(ga.private_key())
            assert uapi_get(ga.socket)[""]["listen_port"] == str(PORT)
            assert ga.peers() == {}, "a link of one site has no peers"
            pid_a = ga.daemon_pid()

            # --- 2. a second site appears: the tunnel comes up and carries a checksummed transfer both ways
            ctl.membership({A: UNDERLAY[A], B: UNDERLAY[B]}, [A, B])
            gb.start()
            assert wait_for(lambda: gb.public_hex() in ga.peers() and ga.public_hex() in gb.peers(), 20), \
                ga.why() + gb.why()
            t0 = time.monotonic()
            _xfer(lab, ga, gb, 5301)
            _xfer(lab, gb, ga, 5302)
            timings["first transfer"] = time.monotonic() - t0
            hs_ab = _stable_handshake(ga, gb.public_hex())

            # --- 3. a third site is added live: same daemon, the A-B session untouched
            ctl.membership({A: UNDERLAY[A], B: UNDERLAY[B], C: UNDERLAY[C]}, [A, B, C])
            gc.start()
            assert wait_for(lambda: gc.public_hex() in ga.peers() and gc.public_hex() in gb.peers(), 20), \
                ga.why() + gc.why()
            assert ping(ga.host_ns, HOST[C]) and ping(gb.host_ns, HOST[C]), ga.why() + gc.why()
            assert ga.daemon_pid() == pid_a, "adding a peer restarted the daemon"
            assert handshake_ns(uapi_get(ga.socket), gb.public_hex()) == hs_ab, "adding a peer dropped A-B"
            pid_b = gb.daemon_pid()

            # health where `linker status` reads it, parsed by the controller's own reader
            def all_healthy() -> bool:
                found = status_link(Target(None, url), LINK, [A, B, C])
                return len(found) == 3 and all(g.healthy() and len(g.health.tunnels) == 2 for g in found)
            assert wait_for(all_healthy, 20, interval=0.5), [g.to_dict() for g in status_link(Target(None, url),
                                                                                              LINK, [A, B, C])]

            # --- 4. C's Elastic IP changes: applied from the membership (C does not own the address yet, so no
            # packet of C's could have taught it), in place
            ctl.membership({A: UNDERLAY[A], B: UNDERLAY[B], C: MOVED}, [A, B, C])
            moved = f"{MOVED}:{PORT}"
            assert wait_for(lambda: ga.peers()[gc.public_hex()].get("endpoint") == moved
                            and gb.peers()[gc.public_hex()].get("endpoint") == moved, 15), ga.why()
            assert ga.daemon_pid() == pid_a and gb.daemon_pid() == pid_b, "an endpoint change restarted a daemon"
            assert handshake_ns(uapi_get(ga.socket), gb.public_hex()) == hs_ab, "an endpoint change dropped A-B"
            # the old address goes first: deleting a subnet's primary address would take the new one with it
            dev = _underlay_iface(gc.ns)
            run(["ip", "addr", "del", f"{UNDERLAY[C]}/24", "dev", dev], gc.ns)
            run(["ip", "addr", "add", f"{MOVED}/24", "dev", dev], gc.ns)
            run(["ip", "route", "replace", "default", "via", "203.0.113.254"], gc.ns)
            assert ping(ga.host_ns, HOST[C]) and ping(gb.host_ns, HOST[C]), "C is not reached at its new address"
            assert ga.peers()[gc.public_hex()]["endpoint"] == moved

            # --- 5. C is removed (its instance goes first, then the final membership): peer and route go
            timings["stop C"] = gc.stop()
            assert not any(gc.iface in _cmdline(p) for p in gc.daemon_pids), "C's daemon outlived its agent"
            ctl.membership({A: UNDERLAY[A], B: UNDERLAY[B]}, [A, B])
            assert wait_for(lambda: gc.public_hex() not in ga.peers() and gc.public_hex() not in gb.peers(), 15), \
                ga.why()
            assert "10.3.0.0/16" not in run(["ip", "route", "show", "dev", ga.iface], ga.ns).stdout
            assert ga.daemon_pid() == pid_a and gb.daemon_pid() == pid_b, "removing a peer restarted a daemon"
            assert handshake_ns(uapi_get(ga.socket), gb.public_hex()) == hs_ab, "removing a peer dropped A-B"
            _xfer(lab, ga, gb, 5303)

            # health: `linker status` itself, over HTTP, exit 0 with A and B healthy; CloudWatch; Prometheus
            done = subprocess.run([LINKER_BIN, "status", "--name", LINK, "--region", A, "--region", B, "--json",
                                   "--endpoint-url", url], capture_output=True, text=True, timeout=60, cwd=REPO)
            assert done.returncode == 0, done.stdout + done.stderr
            doc = json.loads(done.stdout)
            tunnels = {g["site"]: [t["peer_site"] for t in g["health"]["tunnels"]] for g in doc["gateways"]}
            assert doc["healthy"] and tunnels == {A: [B], B: [A]}, doc
            reported = {g["site"]: g["health"]["reported_at"] for g in doc["gateways"]}
            assert all(time.time() - at < 10 for at in reported.values()), reported
            cw = ctl.clients.get("cloudwatch", A).list_metrics(Namespace="Linker", MetricName="HandshakeAge")
            assert any({"Name": "PeerSite", "Value": B} in m["Dimensions"] for m in cw["Metrics"]), cw
            assert f'linker_tunnel_up{{link="{LINK}",site="{A}",peer_site="{B}"}} 1' in _metrics(ga.ns)
            # on the host: `linker gateway status` and `wg show` read the same daemon
            local = json.loads(run([LINKER_BIN, "gateway", "status", "--config", str(ga.config), "--json"],
                                   ga.ns).stdout)
            assert [(t["peer_site"], t["healthy"]) for t in local["tunnels"]] == [(B, True)], local
            wg = run(["wg", "show", ga.iface, "endpoints"], ga.ns).stdout.split()
            assert wg == [to_base64(bytes.fromhex(gb.public_hex())), f"{UNDERLAY[B]}:{PORT}"], wg
            # TCP through the tunnel is clamped to the tunnel's MTU (1420 - 40), whatever the hosts' (1500)
            for host in (ga.host_ns, gb.host_ns):  # forget the path MTU the transfers taught the hosts
                run(["ip", "route", "flush", "cache"], host)
            mss = _mss_seen(lab, gb, ga, 5308)
            assert mss <= 1380, f"MSS {mss}: not clamped to the tunnel's MTU"

            # --- a daemon that dies is restarted by its agent, on the configuration the agent applied last
            os.kill(pid_a, signal.SIGKILL)
            assert wait_for(lambda: ga.daemon_pid() not in (None, pid_a) and ga.answers(), 15), ga.why()
            assert set(ga.peers()) == {gb.public_hex()}
            _xfer(lab, ga, gb, 5307)
            pid_a = ga.daemon_pid()
            assert "daemon exited with -9" in ga.log_text()

            # --- 6. AWS unreachable: the tunnel keeps passing traffic, the agents say they keep the last good config
            marks = {g.site: len(g.log_text()) for g in (ga, gb)}
            _blackhole_aws(net)
            t0 = time.monotonic()
            _xfer(lab, ga, gb, 5304)
            assert wait_for(lambda: all(KEEPS_LAST_GOOD in g.log_text()[marks[g.site]:] for g in (ga, gb)), 40), \
                ga.why() + gb.why()
            timings["aws down noticed"] = time.monotonic() - t0
            _xfer(lab, gb, ga, 5305)
            assert gb.public_hex() in ga.peers() and ga.public_hex() in gb.peers()
            assert ga.daemon_pid() == pid_a and gb.daemon_pid() == pid_b

            # --- 7. the agent restarts without AWS: the tunnel comes back from the last good configuration
            timings["agent stop"] = ga.stop()
            assert timings["agent stop"] < 3, "the agent waited for AWS to time out before stopping"
            assert not ga.answers() and not any(ga.iface in _cmdline(p) for p in ga.daemon_pids)
            key_before = ga.private_key()
            mark = len(ga.log_text())
            t0 = time.monotonic()
            ga.start()
            assert ga.daemon_pid() != pid_a
            assert ga.private_key() == key_before, "the key was regenerated"
            assert wait_for(lambda: gb.public_hex() in ga.peers(), 10), ga.why()
            assert "starting from the last good configuration" in ga.log_text()[mark:]
            _xfer(lab, ga, gb, 5306)
            timings["back from cache"] = time.monotonic() - t0
            assert wait_for(lambda: KEEPS_LAST_GOOD in ga.log_text()[mark:], 30), ga.why()

            # --- no private key anywhere but the key files and the daemons' (0600) configs
            for gw in (ga, gb, gc):
                secret = to_base64(gw.private_key())
                assert secret not in gw.log_text(), f"{gw.site}'s private key is in its log"
                conf = gw.run_dir / f"{gw.iface}.conf"
                assert stat.S_IMODE(conf.stat().st_mode) == 0o600
                for site in (A, B, C):
                    params = ctl.clients.ssm(site).get_parameters_by_path(Path=f"/linker/{LINK}", Recursive=True)
                    assert all(secret not in p["Value"] for p in params["Parameters"])
        except AssertionError:
            for gw in gws.values():
                print(gw.why())
            raise
        finally:
            print("timings:", {k: round(v, 2) for k, v in timings.items()},
                  "total", round(time.monotonic() - t_start, 1))


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
