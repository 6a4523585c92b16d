"""`linker up --ha --sandbox`: two gateways per site, and what a user sees when one fails (issue 13, docs/HA.md).

One link for the whole module (bringing it up costs a minute and a half): each test fails one gateway for real
(linker.sandbox.chaos: the EC2 API, an interface, SIGSTOP, SIGKILL, nftables in a VPC router), asserts what the
user sees (traffic resumes, the routes and `linker status` name the new active, a transfer started before the
failure completes intact, nothing left behind), and leaves the link with two warm gateways per site. Kinds that
switch alternate between the sites so that neither waits out the other's 60 s hysteresis. No timing is asserted
beyond generous bounds: bench/failover.py measures the gaps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from linker import naming
from linker.sandbox import chaos, netns
from linker.sandbox.layout import Layout
from linker.sandbox.lifecycle import Sandbox, remove_leftovers
from tests.sandbox.test_e2e import PROBE, UP_TIMEOUT, Cli

pytestmark = [pytest.mark.netns, pytest.mark.slow]
E, W = "us-east-1", "eu-west-1"
ADDRESS = {E: "10.10.2.10", W: "10.20.2.10"}
LINK = "default"
HYSTERESIS = 62.0
TRANSFER = 6 << 20


class Ha:
    """The module's link: the CLI, the sandbox, and when each site's routes last moved."""

    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.sandbox = Sandbox.existing(Layout(cli.root))
        assert self.sandbox is not None
        self.moved = {E: 0.0, W: 0.0}

    def pair(self, site: str) -> chaos.Pair:
        return chaos.pair(self.sandbox, LINK, site)

    def warm(self, site: str, since: float = 0.0) -> chaos.Pair:
        """The site's pair once it is warm (chaos.warm_pair): a failover to its standby needs no handshake."""
        return chaos.wait_for(f"{site}'s two gateways to be warm",
                              lambda: chaos.warm_pair(self.sandbox, LINK, site, since), 240, 1.0)

    def roles(self, site: str) -> dict[str, str]:
        """`linker status --json`'s role of each of the site's gateways."""
        done = self.cli("status", "--sandbox", "--json")
        doc = json.loads(done.stdout)
        return {g["instance"]: g.get("role") for g in doc["gateways"] if g["site"] == site}

    def rested(self, site: str) -> None:
        """Wait out the site's hysteresis (docs/HA.md rule 5) before an unplanned failure there."""
        time.sleep(max(0.0, self.moved[site] + HYSTERESIS - time.time()))

    def new_owner(self, site: str, old: str) -> str:
        owner = chaos.wait_for(f"{site}'s routes to leave {old}",
                               lambda: (o := chaos.route_owner(self.sandbox, LINK, site)) not in (old, None) and o,
                               60, 0.25)
        self.moved[site] = time.time()
        return str(owner)

    def resumes(self, src: str, dst: str) -> None:
        deadline = time.monotonic() + 60
        while not self.cli.ping(src, ADDRESS[dst], count=1):
            assert time.monotonic() < deadline, f"traffic from {src} to {dst} did not resume"

    def takeover_during_transfer(self, site: str, other: str, fail: Callable[..., chaos.Restore]) -> chaos.Pair:
        """Fail ``site``'s active with ``fail`` while a paced transfer from ``other`` runs through it: the standby
        takes over, traffic resumes and the transfer completes intact. The pair as it was before."""
        pair = self.warm(site)
        self.rested(site)
        transfer = Transfer(self.cli, other, site, TRANSFER, rate=400_000)  # about 15 s
        time.sleep(3)
        restore = fail(self.sandbox, pair.host(pair.active))
        try:
            assert self.new_owner(site, pair.active) == pair.standby
            self.resumes(other, site)
            sent, received = transfer.result()
            assert sent["verified"] and sent["sha256"] == received["sha256"] and received["bytes"] == TRANSFER
        finally:
            restore()
        return pair

    def gateway_health(self, site: str, instance: str) -> dict[str, Any]:
        """The gateway's own health report (its role and last failover), as `linker status` reads it."""
        ssm = self.sandbox.client("ssm", site)
        reply = ssm.get_parameter(Name=naming.gateway_health_parameter(LINK, site, instance))
        return dict(json.loads(reply["Parameter"]["Value"]))


class Transfer:
    """A checksummed TCP transfer between two workload hosts, paced so that it spans a failure."""

    def __init__(self, cli: Cli, src: str, dst: str, size: int, rate: float) -> None:
        self.receiver = cli.popen("sandbox", "exec", dst, "--", *PROBE, "recv", "--port", "5203", "--timeout", "180")
        time.sleep(1.0)
        self.sender = cli.popen("sandbox", "exec", src, "--", *PROBE, "send", "--to", ADDRESS[dst], "--port", "5203",
                                "--bytes", str(size), "--timeout", "120", "--connect-within", "10", "--rate", str(rate))

    def result(self) -> tuple[dict[str, Any], dict[str, Any]]:
        try:
            sent, _ = self.sender.communicate(timeout=180)
            received, _ = self.receiver.communicate(timeout=30)
        finally:
            for proc in (self.sender, self.receiver):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
        return json.loads(sent.splitlines()[-1]), json.loads(received.splitlines()[-1])


@pytest.fixture(scope="module")
def ha() -> Iterator[Ha]:
    root = Path(f"/run/linker-sandbox-test-ha-{time.time_ns() % 10**9}")
    cli = Cli(root)
    layout = Layout(root)
    try:
        doc = cli.json("up", E, W, "--sandbox", "--ha", "--yes", "--timeout", "240", timeout=UP_TIMEOUT)
        assert doc["sandbox"]["proof"][0]["transfer"]["verified"]
        yield Ha(cli)
    finally:
        for log in [*sorted(layout.hosts_dir.glob("*/log/linker-gateway.service.log")), layout.log_path]:
            if log.exists():
                print(f"==== {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        state = layout.read_state()
        if state is not None:
            cli("down", "--sandbox", "--yes", timeout=240)
            remove_leftovers(layout, layout.read_state() or state)


def test_two_gateways_per_site_in_two_zones_the_routes_at_the_lower_id(ha: Ha) -> None:
    for site in (E, W):
        pair = ha.warm(site)
        zones = set()
        for host in pair.hosts:
            reply = ha.cli.ec2(site).describe_instances(InstanceIds=[host["instance"]])
            zones.add(reply["Reservations"][0]["Instances"][0]["Placement"]["AvailabilityZone"])
        assert len(zones) == 2
        assert pair.active == min(h["instance"] for h in pair.hosts)  # nobody failed over at boot
    ha.resumes(E, W)
    ha.resumes(W, E)


def test_interface_down_the_standby_takes_over_and_a_transfer_completes(ha: Ha) -> None:
    """Kind 2, in eu-west-1."""
    pair = ha.takeover_during_transfer(W, E, chaos.fail_interface)
    # the old active comes back and stays standby (no failback)
    after = ha.warm(W)
    assert after.active == pair.standby
    assert chaos.wait_for("status to name the new active", lambda: ha.roles(W) == {
        pair.standby: "active", pair.active: "standby"}, 60, 2.0)


def test_a_dead_agent_causes_no_switch_and_is_restarted(ha: Ha) -> None:
    """Kind 4, in us-east-1: the active's kernel answers the relayed probes, so its data plane counts as alive."""
    pair = ha.warm(E)
    restore = chaos.fail_agent(ha.sandbox, pair.host(pair.active))
    restore()  # waits until its service manager restarted it
    time.sleep(8)  # longer than the hold time: a takeover would have happened by now
    assert chaos.route_owner(ha.sandbox, LINK, E) == pair.active
    ha.resumes(W, E)


@pytest.mark.parametrize("kind", ["partition", "api"])
def test_no_switch_while_the_pair_is_partitioned_or_the_api_is_unreachable(ha: Ha, kind: str) -> None:
    """Kinds 5 and 6, in us-east-1: both gateways healthy, so traffic flows and the routes stay."""
    pair = ha.warm(E)
    pinger = chaos.Pinger(ha.sandbox, ha.sandbox.workload(W), ADDRESS[E], ha.cli.root / f"ping-{kind}.log")
    restore = chaos.fail_partition(ha.sandbox, pair) if kind == "partition" else \
        chaos.fail_api(ha.sandbox, [E, W], LINK)
    try:
        deadline = time.monotonic() + 15  # five hold times
        while time.monotonic() < deadline:
            assert chaos.route_owner(ha.sandbox, LINK, E) == pair.active
            time.sleep(1)
    finally:
        restore()
        gaps = pinger.stop()
    assert gaps.replies > 100 and gaps.longest < 2.0, gaps


def test_a_frozen_daemon_the_standby_takes_over_then_the_old_one_steps_down(ha: Ha) -> None:
    """Kind 3, in us-east-1: the agent is alive, the data plane is not."""
    pair = ha.takeover_during_transfer(E, W, chaos.fail_freeze)
    after = ha.warm(E)
    assert after.active == pair.standby
    health = chaos.wait_for("the old active to report itself standby", lambda: (
        h := ha.gateway_health(E, pair.active)).get("role") == "standby" and h, 60, 1.0)
    assert health["role"] == "standby"
    # the new active reports its role from the takeover on, and its last failover once the record is written: a
    # report published in between has no last_failover yet, the next one (the agent's health interval) has it
    new = chaos.wait_for("the new active to report its failover", lambda: (
        h := ha.gateway_health(E, pair.standby)).get("last_failover") and h, 60, 1.0)
    assert new["role"] == "active" and new["last_failover"]["previous"] == pair.active


def test_a_planned_switch_with_linker_failover_keeps_traffic_flowing(ha: Ha) -> None:
    """`linker failover us-east-1`: the standby, with warm sessions, takes over at once (no hold, no hysteresis)."""
    pair = ha.warm(E)
    pinger = chaos.Pinger(ha.sandbox, ha.sandbox.workload(W), ADDRESS[E], ha.cli.root / "ping-switch.log")
    try:
        time.sleep(2)
        doc = ha.cli.json("failover", E, "--sandbox", "--yes", timeout=90)
        time.sleep(3)
    finally:
        gaps = pinger.stop()
    assert doc["site"] == E and doc["active"] == pair.standby, doc
    assert chaos.route_owner(ha.sandbox, LINK, E) == pair.standby
    ha.moved[E] = time.time()
    assert gaps.replies > 30  # the bench measures the gap (docs/HA.md: one SSM write and half a round trip)
    assert chaos.wait_for("status to name the new active", lambda: ha.roles(E).get(pair.standby) == "active",
                          60, 2.0)
    refused = ha.cli("failover", E, "--sandbox", "--yes", "--to", pair.standby)
    assert refused.returncode == 2 and "already" in (refused.stdout + refused.stderr)


def test_the_active_stopped_through_the_api_the_standby_takes_over(ha: Ha) -> None:
    """Kind 1, in eu-west-1 (after its hysteresis since kind 2); the stopped instance is started again."""
    pair = ha.takeover_during_transfer(W, E, chaos.fail_stop)
    after = ha.warm(W, since=time.time())
    assert after.active == pair.standby


def test_a_rolling_replacement_replaces_one_gateway_at_a_time_and_traffic_flows(ha: Ha) -> None:
    """`up --ha` with another instance type: in each site the standby is replaced, the site switches to it, then
    the old active is replaced; routes always point at a running gateway, so traffic keeps flowing."""
    before = {site: ha.warm(site) for site in (E, W)}
    pinger = chaos.Pinger(ha.sandbox, ha.sandbox.workload(W), ADDRESS[E], ha.cli.root / "ping-rolling.log")
    try:
        done = ha.cli("up", E, W, "--sandbox", "--ha", "--yes", "--instance-type", "t3.small", "--json",
                      timeout=900)
    finally:
        gaps = pinger.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for site in (E, W):
        after = ha.warm(site)
        old = {h["instance"] for h in before[site].hosts}
        assert not old & {h["instance"] for h in after.hosts}  # both replaced
        reply = ha.cli.ec2(site).describe_instances(InstanceIds=[h["instance"] for h in after.hosts])
        assert {i["InstanceType"] for r in reply["Reservations"] for i in r["Instances"]} == {"t3.small"}
    assert gaps.replies > 0.8 * gaps.sent_seconds / chaos.PING_INTERVAL, gaps  # the bench measures the gaps
    ha.resumes(W, E)
    ha.resumes(E, W)
    again = ha.cli.json("up", E, W, "--sandbox", "--ha", "--yes", "--instance-type", "t3.small", timeout=600)
    assert again["changes"] == []


def test_down_removes_both_gateways_of_each_site_and_leaves_nothing(ha: Ha) -> None:
    namespaces = [h["netns"] for h in ha.cli.hosts()]
    down = ha.cli.json("down", "--sandbox", "--yes", timeout=240)
    assert down["removed"] and down["sandbox"]["removed"]
    assert not any(netns.exists(n) for n in namespaces)
    assert not ha.cli.root.exists()
