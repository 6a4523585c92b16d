"""`linker up ... --sandbox` end to end, as a user runs it (the CLI in a subprocess, root), in a sandbox of its own.

Every test's sandbox lives in its own directory (LINKER_SANDBOX_DIR), so its namespaces never collide with a
sandbox someone runs on the same machine; the fixture removes it even when the test fails. Traffic stays in the
sandbox's namespaces: the addresses are TEST-NET and 10.x inside them.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from linker.dataplane import privilege
from linker.sandbox import netns
from linker.sandbox.layout import Layout
from linker.sandbox.lifecycle import remove_leftovers

pytestmark = [pytest.mark.netns, pytest.mark.slow]
E, W, S = "us-east-1", "eu-west-1", "ap-south-1"
REPO = Path(__file__).resolve().parents[2]
PROBE = [sys.executable, "-m", "linker.sandbox.probe"]  # run here by the test, apart from `up`'s own proof
UP_TIMEOUT = 300


class Cli:
    """Runs `linker ...` as a subprocess against one sandbox directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "LINKER_SANDBOX_DIR": str(root), "COLUMNS": "200"}
        for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "LINKER_ENDPOINT_URL"):
            self.env.pop(var, None)

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "linker", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "linker", *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO)

    def json(self, *args: str, timeout: float = 120) -> dict[str, Any]:
        done = self(*args, "--json", timeout=timeout)
        assert done.returncode == 0, f"linker {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    def hosts(self) -> list[dict[str, Any]]:
        return self.json("sandbox", "hosts")["hosts"]

    def ec2(self, region: str) -> Any:
        """An EC2 client of the sandbox's API, with its access key (root only: from the sandbox's state)."""
        state = Layout(self.root).read_state() or {}
        session = boto3.session.Session(aws_access_key_id=state["access_key"],
                                        aws_secret_access_key="sandbox")  # noqa: S106 (moto checks no secret)
        return session.client("ec2", region_name=region, endpoint_url=state["endpoint"])

    def gateway(self, region: str) -> dict[str, Any]:
        return next(h for h in self.hosts() if h["region"] == region and h["role"] == "gateway")

    def ping(self, region: str, address: str, count: int = 3) -> bool:
        done = self("sandbox", "exec", region, "--", "ping", "-c", str(count), "-i", "0.2", "-W", "2", address)
        return done.returncode == 0 and f"{count} received" in done.stdout

    def transfer(self, src: str, dst: str, address: str, size: int = 8 << 20) -> tuple[str, str]:
        """Checksummed TCP transfer from ``src``'s workload host to ``dst``'s: (sent sha256, received sha256)."""
        receiver = self.popen("sandbox", "exec", dst, "--", *PROBE, "recv", "--port", "5202", "--timeout", "120")
        try:
            sent = self("sandbox", "exec", src, "--", *PROBE, "send", "--to", address, "--port", "5202", "--bytes",
                        str(size), "--timeout", "60", "--connect-within", "10", timeout=90)
            received, _ = receiver.communicate(timeout=60)
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait(5)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        return json.loads(sent.stdout.splitlines()[-1])["sha256"], json.loads(received.splitlines()[-1])["sha256"]


def root_links() -> set[str]:
    return {line.split(":")[1].strip().split("@")[0]
            for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()}


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    root = Path(f"/run/linker-sandbox-test-{os.getpid()}-{tmp_path.name}")
    layout = Layout(root)
    runner = Cli(root)
    try:
        yield runner
    finally:
        for log in [*sorted(layout.hosts_dir.glob("*/log/*.log")), layout.log_path]:  # shown when a test fails
            if log.exists():
                print(f"==== {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        state = layout.read_state()
        if state is not None:
            runner("down", "--sandbox", "--yes", timeout=180)
            remove_leftovers(layout, layout.read_state() or state)


def pids_of(cli: Cli) -> list[int]:
    """Every process the sandbox's records name: supervisor, host inits, units and their children."""
    state = Layout(cli.root).read_state() or {}
    pids = [int(state["pid"])] if state.get("pid") else []
    for host in cli.hosts():
        pids.append(int(host["init_pid"]))
        for service in host["services"].values():
            pids += [p for p in [service.get("pid")] if p] + [p["pid"] for p in service["processes"]]
    return pids


def daemon_pid(host: dict[str, Any]) -> int:
    service = host["services"]["linker-gateway.service"]
    return next(p["pid"] for p in service["processes"] if " daemon " in p["command"])


def assert_keys_private(root: Path) -> None:
    """Each gateway's private key is only in its key file and its daemon's config, both 0600 in 0700 places,
    and in no log, record or other file of the sandbox."""
    assert root.stat().st_mode & 0o077 == 0
    keys = {p: p.read_text().strip() for p in root.glob("hosts/*/upper/var/lib/linker/private.key")}
    assert len(keys) == 2
    for path in (p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        for key_file, key in keys.items():
            if key.encode() in data:
                assert path in (key_file, key_file.parents[4] / "run" / "linker" / "linker0.conf"), path
                assert path.stat().st_mode & 0o077 == 0 and path.parent.stat().st_mode & 0o077 == 0, path


def test_two_regions_up_carry_traffic_survive_a_daemon_kill_and_down_leaves_nothing(cli: Cli) -> None:
    links_before = root_links()
    doc = cli.json("up", E, W, "--sandbox", "--yes", "--timeout", "180", timeout=UP_TIMEOUT)
    proof = doc["sandbox"]["proof"]
    assert [(p["from"], p["to"]) for p in proof] == [(E, W)]
    assert proof[0]["ping"]["received"] == 5 and proof[0]["transfer"]["verified"]
    assert proof[0]["transfer"]["mbit_s"] > 0 and proof[0]["ping"]["rtt_ms"]["avg"] > 0
    assert {g["site"] for g in doc["gateways"] if g["healthy"]} == {E, W}  # as the gateways themselves report
    eips = {g["eip"] for g in doc["gateways"]}
    assert all(ip.startswith("203.0.113.") for ip in eips)  # TEST-NET-3, never a real public address
    again = cli.json("up", E, W, "--sandbox", "--yes", "--timeout", "180", timeout=UP_TIMEOUT)
    assert again["changes"] == [] and not again["applied"] and again["sandbox"]["proof"][0]["transfer"]["verified"]

    # the link, independently of `up`'s own proof: ping and a checksummed transfer between the workload hosts
    assert cli.ping(E, "10.20.2.10") and cli.ping(W, "10.10.2.10")
    sent, received = cli.transfer(E, W, "10.20.2.10")
    assert sent == received and len(sent) == 64
    status = cli.json("status", "--sandbox")
    assert status["healthy"] and {g["site"] for g in status["gateways"]} == {E, W}

    # source/dest check on (drift made behind linker's back): the VPC stops forwarding through the gateway,
    # and the next `up` turns it off again and nothing else
    cli.ec2(W).modify_instance_attribute(InstanceId=cli.gateway(W)["instance"], SourceDestCheck={"Value": True})
    deadline = time.monotonic() + 30
    while cli.ping(E, "10.20.2.10", count=1):
        assert time.monotonic() < deadline, "the gateway still forwarded with source/dest check on"
    fixed = cli.json("up", E, W, "--sandbox", "--yes", "--timeout", "180", timeout=UP_TIMEOUT)
    assert [(c["region"], c["action"], c["kind"]) for c in fixed["changes"]] == [(W, "update", "source-dest-check")]
    assert cli.ping(E, "10.20.2.10")

    # kill eu-west-1's daemon by its PID: its agent starts a new one and traffic resumes
    gateway = cli.gateway(W)
    agent, old = gateway["services"]["linker-gateway.service"]["pid"], daemon_pid(gateway)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not cli.ping(E, "10.20.2.10", count=1):
        assert time.monotonic() < deadline, "traffic did not resume after the daemon was killed"
    gateway = cli.gateway(W)
    assert daemon_pid(gateway) != old and not netns.alive(old)
    assert gateway["services"]["linker-gateway.service"]["pid"] == agent  # the agent restarted it, not systemd
    # the gateway's daemon, the process that parses the internet's datagrams, runs without root
    who = privilege.current(daemon_pid(gateway))
    assert who.uid == pwd.getpwnam("nobody").pw_uid and who.effective == 1 << privilege.CAP_NET_ADMIN, who
    sent, received = cli.transfer(E, W, "10.20.2.10", size=1 << 20)
    assert sent == received

    assert_keys_private(cli.root)
    recorded = pids_of(cli)
    namespaces = [h["netns"] for h in cli.hosts()]
    down = cli.json("down", "--sandbox", "--yes", timeout=180)
    assert down["removed"] and down["sandbox"]["removed"]
    assert not any(netns.alive(p) for p in recorded)
    assert not any(netns.exists(n) for n in [*namespaces, *down["sandbox"]["namespaces"]])
    prefix = Layout(cli.root).names.prefix + "-"
    assert not [n for n in netns.list_netns() if n.startswith(prefix)]
    assert root_links() == links_before  # the sandbox never adds an interface to the machine's namespace
    assert not cli.root.exists()
    again = cli.json("down", "--sandbox", "--yes")
    assert not again["removed"] and not again["sandbox"]["removed"]


def test_three_regions_full_mesh_then_one_region_fewer_keeps_the_others_linked(cli: Cli) -> None:
    doc = cli.json("up", E, W, S, "--sandbox", "--yes", "--timeout", "180", timeout=UP_TIMEOUT)
    assert [(p["to"], p["ping"]["received"], p["transfer"]["verified"]) for p in doc["sandbox"]["proof"]] == [
        (W, 5, True), (S, 5, True)]
    assert cli.ping(W, "10.30.2.10") and cli.ping(S, "10.20.2.10")  # the mesh, not a star around us-east-1
    removed = cli.gateway(S)

    doc = cli.json("up", E, W, "--sandbox", "--yes", "--timeout", "180", timeout=UP_TIMEOUT)
    assert {(c["region"], c["action"], c["kind"]) for c in doc["changes"]} >= {(S, "delete", "instance"),
                                                                             (S, "delete", "eip")}
    assert doc["sandbox"]["proof"][0]["transfer"]["verified"]
    assert cli.ping(W, "10.10.2.10")
    assert not netns.exists(removed["netns"]) and not netns.alive(int(removed["init_pid"]))
    routers = {r["region"]: r["netns"] for r in (Layout(cli.root).read_state() or {})["routers"].values()}
    for region, peer in ((E, "10.20.0.0/16"), (W, "10.10.0.0/16")):  # the VPC routes to the removed site went too
        tables = subprocess.run(["ip", "-n", routers[region], "route", "show", "table", "all"], capture_output=True,
                                text=True, check=True).stdout
        assert "10.30.0.0/16" not in tables and f"{peer} via" in tables
    assert not any(h["instance"] == removed["instance"] for h in cli.hosts())
    for region in (E, W):  # the remaining gateways dropped the removed peer
        peers = cli("sandbox", "exec", region, "--gateway", "--", "wg", "show", "linker0", "peers")
        assert peers.returncode == 0 and len(peers.stdout.split()) == 1
    ec2 = cli.ec2(S)
    state = Layout(cli.root).read_state() or {}
    ssm = boto3.session.Session(aws_access_key_id=state["access_key"], aws_secret_access_key="sandbox").client(  # noqa: S106
        "ssm", region_name=S, endpoint_url=state["endpoint"])
    flt = [{"Name": "tag:linker:link", "Values": ["default"]}]
    live = [i for r in ec2.describe_instances(Filters=flt)["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] != "terminated"]
    assert not live and not ec2.describe_addresses(Filters=flt)["Addresses"]
    assert not ec2.describe_security_groups(Filters=flt)["SecurityGroups"]
    assert not ssm.get_parameters_by_path(Path="/linker/default", Recursive=True)["Parameters"]

    bad = cli("sandbox", "exec", "mars-west-1", "--", "true")
    assert bad.returncode == 2 and "no workload host in mars-west-1" in bad.stderr and "Traceback" not in bad.stderr


def bootstraps(cli: Cli) -> dict[str, dict[str, Any]]:
    """What `linker status --sandbox --json` says of each gateway's bootstrap (exit 4 while one is degraded)."""
    done = cli("status", "--sandbox", "--json")
    assert done.returncode in (0, 4), done.stdout + done.stderr
    return {g["site"]: g["bootstrap"] for g in json.loads(done.stdout)["gateways"] if g["bootstrap"]}


def test_a_bootstrap_whose_first_downloads_fail_retries_and_the_link_comes_up(cli: Cli) -> None:
    cli.env["LINKER_SANDBOX_FAULTS"] = "aws-s3-cp=2"  # each gateway's first two `aws s3 cp` fail (403)
    doc = cli.json("up", E, W, "--sandbox", "--yes", "--timeout", "240", timeout=UP_TIMEOUT + 60)
    assert doc["sandbox"]["proof"][0]["transfer"]["verified"]
    assert {g["site"] for g in doc["gateways"] if g["healthy"]} == {E, W}
    boots = bootstraps(cli)
    assert {s: (b["state"], b["attempt"]) for s, b in boots.items()} == {E: ("succeeded", 3), W: ("succeeded", 3)}
    assert {b["instance"] for b in boots.values()} == {g["instance"] for g in doc["gateways"]}
    journal = Path(cli.gateway(W)["services"]["linker-bootstrap.service"]["journal"]).read_text()
    assert "attempt 1: download failed (exit 1)" in journal and "next attempt in 5 s" in journal
    assert "attempt 2: download failed (exit 1)" in journal and "next attempt in 10 s" in journal
    assert "installed in 3 attempt(s)" in journal
    assert not Path("/usr/local/sbin/linker-bootstrap").exists()  # each host's own /usr/local, not the machine's


def test_a_bootstrap_that_keeps_failing_is_shown_by_status_with_its_reason(cli: Cli) -> None:
    cli.env["LINKER_SANDBOX_FAULTS"] = "aws-s3-cp=always"
    doc = cli.json("up", E, W, "--sandbox", "--yes", "--no-wait", timeout=UP_TIMEOUT)
    assert doc["applied"]
    deadline = time.monotonic() + 120
    while set(boots := bootstraps(cli)) != {E, W} or any(b["attempt"] < 2 for b in boots.values()):
        assert time.monotonic() < deadline, boots
        time.sleep(2)
    for boot in boots.values():
        assert (boot["state"], boot["step"], boot["exit_code"]) == ("retrying", "download", 1)
        assert boot["summary"].startswith(f"bootstrap failed at step download (attempt {boot['attempt']}, ")
        assert "An error occurred (403) when calling the HeadObject operation: Forbidden" in boot["summary"]
    status = cli("status", "--sandbox")
    assert status.returncode == 4 and f"{W}: bootstrap failed at step download (attempt" in status.stdout
    gateway = cli.gateway(W)["services"]
    assert gateway["linker-bootstrap.service"]["state"] == "activating"  # still retrying
    assert gateway["linker-gateway.service"]["state"] == "waiting" and not gateway["linker-gateway.service"]["pid"]


def test_without_root_it_says_to_use_sudo() -> None:
    argv = [sys.executable, "-m", "linker", "up", E, W, "--sandbox", "--yes"]
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    env = {**os.environ, "LINKER_SANDBOX_DIR": "/run/linker-sandbox-never-made"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/", env=env)
    assert done.returncode == 2, done.stderr
    assert "needs root" in done.stderr and "sudo" in done.stderr and "Traceback" not in done.stderr
    assert not Path("/run/linker-sandbox-never-made").exists()
