"""The rolling replacement of a link with two gateways per site against moto (docs/HA.md "Rolling replacement"):
``up --ha --upgrade`` replaces each site's standby first, then asks for a planned switch to it and waits until
the site's active record names it, and only then replaces the old active, in the same run. The gateways' agents
are played by ``FakeAgents`` (tests/control/agents.py) and ``ReadyReporter``."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from linker import __version__, naming
from linker.contract import Membership
from linker.control import operations
from linker.control.aws import Target
from linker.control.changes import Kind, Phase
from linker.control.operations import Options, plan_link, up_link
from linker.control.package import Package
from linker.errors import CloudError
from tests.control.agents import FakeAgents
from tests.control.cloud import ReadyReporter
from tests.control.test_ha_apply import HA, E, W, gateways, membership, two_zones, yes

NEWER = Package(f"linker-{__version__}-gateway-newer.tar", b"another build", "cd" * 32)
OPTS = Options(poll=0.01, timeout=5.0, max_workers=1)  # one worker: the calls in the same order every run


def active_record(aws: Any, region: str) -> str | None:
    try:
        value = aws.client("ssm", region_name=region).get_parameter(
            Name=naming.active_parameter("pair", region))["Parameter"]["Value"]
    except aws.client("ssm", region_name=region).exceptions.ParameterNotFound:
        return None
    return str(json.loads(value)["instance"])


def route_target(aws: Any, region: str) -> set[str]:
    """The instances the linker routes of ``region`` point at."""
    ec2 = aws.client("ec2", region_name=region)
    enis = {r["NetworkInterfaceId"] for t in ec2.describe_route_tables()["RouteTables"] for r in t["Routes"]
            if r.get("NetworkInterfaceId")}
    return {i["InstanceId"] for i in gateways(aws, region) if i["NetworkInterfaces"][0]["NetworkInterfaceId"] in enis}


@pytest.fixture
def ha_link(aws, monkeypatch):  # type: ignore[no-untyped-def]
    """A two-site link with two gateways each, ready, their agents running and each site's record written; the
    controller from then on builds another linker (an upgrade replaces every gateway). Yields the agents'
    shared log (a ReadyReporter's calls)."""
    two_zones(aws, E, "10.10.0.0/16")
    two_zones(aws, W, "10.20.0.0/16")
    up_link(Target(), HA, yes, options=replace(OPTS, hooks=ReadyReporter(aws).hooks()))
    monkeypatch.setattr(operations.package, "build", lambda arch="x86_64": NEWER)
    return aws


def memberships(calls: list[tuple[str, str]]) -> list[Membership]:
    return [Membership.from_json(v) for name, v in calls if name == "PutParameter" and v.startswith("{")]


def test_an_upgrade_replaces_the_standby_switches_then_replaces_the_old_active(ha_link) -> None:  # type: ignore[no-untyped-def]
    aws = ha_link
    reporter = ReadyReporter(aws)
    with FakeAgents(aws, "pair", (E, W), reporter.calls) as agents:
        agents.settle()
        before = {r: [i["InstanceId"] for i in gateways(aws, r)] for r in (E, W)}
        active = {r: active_record(aws, r) for r in (E, W)}
        assert active == {r: before[r][0] for r in (E, W)}  # the lower id (rule 3)
        made = up_link(Target(), HA, yes, options=replace(OPTS, upgrade=True, hooks=reporter.hooks()))
        agents.settle()
    assert not agents.faults, agents.faults  # every route always at a running gateway, never three listed
    calls = reporter.calls
    assert not [c for c in calls if c[0] in ("CreateRoute", "ReplaceRoute")]  # the gateways moved the routes
    assert [c.kind for c in made].count(Kind.ACTIVE_SWITCH) == 2  # one switch per site, in the first pass
    for r in (E, W):
        old_active, old_standby = active[r], next(i for i in before[r] if i != active[r])
        now = [i["InstanceId"] for i in gateways(aws, r)]
        assert len(now) == 2 and not set(now) & set(before[r])
        new_active = active_record(aws, r)
        new_standby = next(i for i in now if i != new_active)
        assert route_target(aws, r) == {new_active}
        site = membership(aws, E).site(r)
        assert site is not None and site.gateway == new_active and {g.instance for g in site.gateways} == set(now)
        # the standby first, the active never gone before the switch to its successor completed
        assert calls.index(("RunInstances", new_active)) < calls.index(("TerminateInstances", str([old_standby]))) \
            < calls.index(("Switched", new_active)) < calls.index(("RunInstances", new_standby)) \
            < calls.index(("TerminateInstances", str([old_active]))), calls
    # at most two gateways of a site in every membership written, and the one named is always listed
    for doc in memberships(calls):
        for site in doc.sites:
            assert len(site.gateways) <= 2 and site.gateway in {g.instance for g in site.gateways}
    switch = aws.client("ssm", region_name=E).get_parameters_by_path(Path=naming.parameter_prefix("pair"),
                                                                     Recursive=True)["Parameters"]
    assert not [p for p in switch if p["Name"].endswith("/switch")]  # a done switch's request is removed
    assert plan_link(Target(), HA, upgrade=True) == []
    assert up_link(Target(), HA, yes, options=replace(OPTS, upgrade=True)) == []


def test_plan_shows_the_rolling_order_and_changes_nothing(ha_link) -> None:  # type: ignore[no-untyped-def]
    aws = ha_link
    before = {r: [i["InstanceId"] for i in gateways(aws, r)] for r in (E, W)}
    planned = plan_link(Target(), HA, upgrade=True)
    east = [c for c in planned if c.region == E]
    switch = next(c for c in east if c.kind == Kind.ACTIVE_SWITCH)
    note = next(c for c in east if c.kind == Kind.ROLLING)
    assert switch.param("from") == note.target == before[E][0]  # the routes' target: the lower id
    assert [c.target for c in east if c.kind == Kind.INSTANCE and c.action == "delete"] == [before[E][1]]
    # listed in the order they are made: the standbys' replacements and the membership, then each switch and
    # the note that the old active is replaced next
    assert [(c.region, c.kind) for c in planned[-4:]] == [(E, Kind.ACTIVE_SWITCH), (E, Kind.ROLLING),
                                                          (W, Kind.ACTIVE_SWITCH), (W, Kind.ROLLING)]
    assert planned.index(next(c for c in planned if c.kind == Kind.MEMBERSHIP and c.phase == Phase.MEMBERSHIP)) < \
        planned.index(switch)
    assert {r: [i["InstanceId"] for i in gateways(aws, r)] for r in (E, W)} == before


def test_a_standby_that_never_takes_over_fails_the_run_with_the_old_active_serving(ha_link) -> None:  # type: ignore[no-untyped-def]
    aws = ha_link
    reporter = ReadyReporter(aws)
    with FakeAgents(aws, "pair", (E, W), reporter.calls, switching=False) as agents:
        agents.settle()
        before = {r: active_record(aws, r) for r in (E, W)}
        with pytest.raises(CloudError, match="did not take over") as err:
            up_link(Target(), HA, yes, options=replace(OPTS, upgrade=True, hooks=reporter.hooks()))
        assert "still serves the site" in err.value.message and "linker status" in (err.value.fix or "")
        agents.settle()
    assert not agents.faults, agents.faults
    for r in (E, W):
        assert route_target(aws, r) == {before[r]} and active_record(aws, r) == before[r]
        listed = membership(aws, r).site(r)
        assert listed is not None and listed.gateway == before[r] and len(listed.gateways) == 2
    params = [p["Name"] for p in aws.client("ssm", region_name=E).get_parameters_by_path(
        Path=naming.parameter_prefix("pair"), Recursive=True)["Parameters"]]
    assert naming.switch_parameter("pair", E) not in params  # withdrawn: no switch later, unasked

    # once the new standby can take over, the next up finishes the rolling replacement
    reporter = ReadyReporter(aws)
    with FakeAgents(aws, "pair", (E, W), reporter.calls) as agents:
        up_link(Target(), HA, yes, options=replace(OPTS, upgrade=True, hooks=reporter.hooks()))
        agents.settle()
    assert not agents.faults, agents.faults
    for r in (E, W):
        assert before[r] not in {i["InstanceId"] for i in gateways(aws, r)} and len(gateways(aws, r)) == 2
        assert route_target(aws, r) == {active_record(aws, r)}
    assert plan_link(Target(), HA, upgrade=True) == []
