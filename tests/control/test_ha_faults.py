"""Fault injection in ``up --ha`` (as test_faults.py does for one gateway): a run that fails at a call only a site
with two gateways makes (its second launch, address, association, the route table's tag), by an error or by the
process dying there, is finished by the next ``up --ha`` (no duplicates) and cleaned by ``down``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from linker.control.aws import Clients, Target
from linker.control.operations import Options, down_link, plan_link, up_link
from linker.errors import CloudError
from tests.control.cloud import inventory
from tests.control.test_faults import INJECTOR, Died
from tests.control.test_ha_apply import HA, E, W, two_zones, yes

# (call, which of its calls in the run): the first site's second launch, its second address and association
# (one worker: the same order every run), and the last route-table tag (the second site's, for its gateways)
POINTS = [("RunInstances", 1), ("AllocateAddress", 1), ("AssociateAddress", 1), ("CreateTags", -1)]


@pytest.mark.parametrize("die", [False, True], ids=["error", "death"])
@pytest.mark.parametrize("call,nth", POINTS, ids=[f"{c}-{n}" for c, n in POINTS])
def test_a_failed_ha_run_is_finished_by_up_and_cleaned_by_down(aws, call: str, nth: int, die: bool) -> None:  # type: ignore[no-untyped-def]
    two_zones(aws, E, "10.10.0.0/16")
    two_zones(aws, W, "10.20.0.0/16")
    opts = Options(max_workers=1, poll=0.0, timeout=5.0,
                   clients=Clients(Target(), hooks=(("before-call.*.*", INJECTOR),), session=aws))
    INJECTOR.arm()
    up_link(Target(), HA, yes, options=opts)
    reference = inventory(aws, "pair", [E, W])
    at = [k for k, name in enumerate(INJECTOR.names) if name == call][nth]
    down_link(Target(), "pair", yes, options=opts)

    INJECTOR.arm(at, die)
    with pytest.raises(Died if die else CloudError):
        up_link(Target(), HA, yes, options=opts)
    INJECTOR.arm()
    # a dead run left its lock held: the next run breaks it, as an operator does with --force-unlock
    assert up_link(Target(), HA, yes, options=replace(opts, force_unlock=die))
    done = inventory(aws, "pair", [E, W])
    assert all(done[r]["instances"] == 2 and done[r]["eips"] == 2 for r in (E, W))
    assert [(done[r]["params"], len(done[r]["route_tags"]), len(done[r]["eni_routes"])) for r in (E, W)] == \
        [(reference[r]["params"], len(reference[r]["route_tags"]), len(reference[r]["eni_routes"])) for r in (E, W)]
    assert plan_link(Target(), HA) == []
    down_link(Target(), "pair", yes, options=opts)
    gone = inventory(aws, "pair", [E, W])
    assert not gone["roles"] and not gone["buckets"] and all(not any(gone[r].values()) for r in (E, W))
