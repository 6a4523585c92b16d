"""Fault injection in a rolling replacement (``up --ha --upgrade``): a run that fails, by an error or by the
process dying, at the old standby's retirement, at the planned switch's request, or at the second pass's launch
is finished by the next ``up`` (one gateway at a time still: the old active goes only after the switch to its
successor), with every route at a running gateway and never more than two gateways listed per site."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from linker import naming
from linker.control.aws import READ_PREFIXES, Clients, Target
from linker.control.operations import plan_link, up_link
from linker.errors import CloudError
from tests.control.agents import FakeAgents
from tests.control.cloud import ReadyReporter
from tests.control.test_faults import Died
from tests.control.test_ha_apply import HA, E, W, gateways, membership, yes
from tests.control.test_ha_rollout_apply import OPTS, active_record, ha_link, route_target  # noqa: F401 (fixture)

Match = Callable[[str, dict[str, Any]], bool]


class FailAt:
    """A botocore hook failing the ``nth`` call (from 0) that ``match`` accepts; when dying, every later call
    fails too, reads included (the process is gone)."""

    def __init__(self, match: Match, nth: int, die: bool) -> None:
        self.match, self.nth, self.die = match, nth, die
        self.seen, self.dead = 0, False
        self._lock = threading.Lock()

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.dead:
            raise Died(model.name)
        if model.name.startswith(READ_PREFIXES) or not self.match(model.name, params):
            return
        with self._lock:
            n, self.seen = self.seen, self.seen + 1
        if n == self.nth:
            if self.die:
                self.dead = True
                raise Died(model.name)
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}}, model.name)


POINTS: dict[str, tuple[Match, int]] = {
    "retire-standby": (lambda name, _p: name == "TerminateInstances", 0),
    "switch-request": (lambda name, p: name == "PutParameter" and str(p.get("Name", "")).endswith("/switch"), 0),
    "second-launch": (lambda name, _p: name == "RunInstances", 2),  # the second pass's first (one worker)
}
CASES = [("retire-standby", True), ("switch-request", False), ("switch-request", True), ("second-launch", True)]


@pytest.mark.usefixtures("ha_link")
@pytest.mark.parametrize("point,die", CASES, ids=[f"{p}-{'death' if d else 'error'}" for p, d in CASES])
def test_a_failed_rolling_run_is_finished_by_the_next_up(aws, point: str, die: bool) -> None:  # type: ignore[no-untyped-def]
    reporter = ReadyReporter(aws)
    match, nth = POINTS[point]
    fail = FailAt(match, nth, die)
    # at provide-client-params the call's own parameters are seen (before-call has the serialized request)
    faulty = Clients(Target(), hooks=(("provide-client-params.*.*", fail), *reporter.hooks()), session=aws)
    with FakeAgents(aws, "pair", (E, W), reporter.calls) as agents:
        agents.settle()
        first = {r: active_record(aws, r) for r in (E, W)}
        original = {r: {i["InstanceId"] for i in gateways(aws, r)} for r in (E, W)}
        with pytest.raises(Died if die else CloudError):
            up_link(Target(), HA, yes, options=replace(OPTS, upgrade=True, clients=faulty))
        assert fail.seen > nth  # the fault was met
        up_link(Target(), HA, yes, options=replace(OPTS, upgrade=True, force_unlock=die, hooks=reporter.hooks()))
        agents.settle()
    assert not agents.faults, agents.faults
    calls = reporter.calls
    for r in (E, W):
        now = {i["InstanceId"] for i in gateways(aws, r)}
        active = active_record(aws, r)
        assert len(now) == 2 and not now & original[r] and route_target(aws, r) == {active}
        listed = membership(aws, r).site(r)
        assert listed is not None and listed.gateway == active and {g.instance for g in listed.gateways} == now
        # the first active went only after the switch to the gateway that is active now
        assert calls.index(("Switched", active)) < calls.index(("TerminateInstances", str([first[r]]))), calls
    params = aws.client("ssm", region_name=E).get_parameters_by_path(Path=naming.parameter_prefix("pair"),
                                                                     Recursive=True)["Parameters"]
    assert not [p for p in params if p["Name"].endswith("/switch")]
    assert plan_link(Target(), HA, upgrade=True) == []
