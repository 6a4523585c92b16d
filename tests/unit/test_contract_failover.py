"""The health report's role and last failover (docs/HA.md): round trips, reports without them, bad values."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linker.contract import MAX_REASON, ROLES, STANDARD_TIER_BYTES, FailoverRecord, GatewayHealth
from linker.errors import ContractError
from linker.gateway.failover import Failover
from linker.gateway.failover_events import ActiveRecordRead, DirectProbe, RouteView, TakeOver, WitnessProbe
from tests.unit.test_contract import H, names, seconds, tunnels
from tests.unit.test_document_sizes import REGIONS, health, membership

LAST = FailoverRecord(1700000000.25, "the active i-0aaa is unreachable (directly and through the witnesses)",
                      "i-0aaa", 4.25)
HA = GatewayHealth("prod", "us-east-1", 1700000000.5, H.tunnels, "i-0bbb", "0.2.0", "active", LAST)

records = st.builds(FailoverRecord, seconds, st.text(min_size=1, max_size=MAX_REASON),
                    st.none() | names, st.none() | st.floats(0, 1e6, allow_nan=False))
ha_healths = st.builds(GatewayHealth, names, names, seconds, st.lists(tunnels, max_size=4).map(tuple),
                       st.none() | names, st.none() | names, st.none() | st.sampled_from(ROLES),
                       st.none() | records)


def test_a_report_with_role_and_last_failover_round_trips() -> None:
    assert GatewayHealth.from_json(HA.to_json()) == HA
    assert GatewayHealth.from_json(HA.to_document()).last_failover == LAST
    doc = json.loads(HA.to_json())
    assert doc["role"] == "active"
    assert doc["last_failover"] == {"at": 1700000000.25, "reason": LAST.reason, "previous": "i-0aaa", "gap": 4.25}


@given(ha_healths)
def test_any_report_round_trips(h: GatewayHealth) -> None:
    assert GatewayHealth.from_json(h.to_json()) == h
    assert GatewayHealth.from_json(h.to_document()).last_failover == h.last_failover


def test_a_report_without_them_reads_as_before_and_is_written_as_before() -> None:
    assert "role" not in H.to_dict() and "last_failover" not in H.to_dict()
    back = GatewayHealth.from_json(H.to_json())
    assert back.role is None and back.last_failover is None
    assert GatewayHealth.from_dict({**H.to_dict(), "role": None, "last_failover": None}) == H


def test_a_planned_switch_has_no_previous_gap() -> None:
    planned = FailoverRecord(1.0, "planned switch", "i-0aaa")
    assert GatewayHealth.from_json(GatewayHealth("p", "s", 2.0, (), role="active",
                                                 last_failover=planned).to_json()).last_failover == planned


@pytest.mark.parametrize("change", [
    {"role": "leader"}, {"role": 1},
    {"last_failover": []}, {"last_failover": {"reason": "x"}}, {"last_failover": {"at": 1.0, "reason": ""}},
    {"last_failover": {"at": 1.0, "reason": "x" * (MAX_REASON + 1)}},
    {"last_failover": {"at": 1.0, "reason": "x", "gap": -1.0}},
    {"last_failover": {"at": 1.0, "reason": "x", "gap": "4 s"}},
    {"last_failover": {"at": "now", "reason": "x"}},
])
def test_bad_roles_and_records_are_refused(change) -> None:
    with pytest.raises(ContractError, match="health document is malformed"):
        GatewayHealth.from_dict({**HA.to_dict(), **change})


def test_a_20_site_report_with_role_and_the_longest_reason_fits_the_standard_tier() -> None:
    m = membership()
    plain = health(m, REGIONS[-1])
    longest = FailoverRecord(1764765612.123456, "r" * MAX_REASON, "i-0123456789abcdef0", 123.456789)
    h = GatewayHealth(plain.link, plain.site, plain.reported_at, plain.tunnels, "i-0123456789abcdef0",
                      "10.20.30", "standby", longest)
    assert len(h.to_document().encode()) <= STANDARD_TIER_BYTES - 256, len(h.to_document())
    assert GatewayHealth.from_json(h.to_document()).last_failover == longest


def test_the_failover_cores_reasons_fit_a_record_with_the_longest_instance_ids() -> None:
    me, sibling = "i-" + "f" * 61, "i-" + "e" * 61
    reasons = []
    for targets, direct in ((None, True), (sibling, True), (sibling, False)):
        core = Failover("ap-southeast-3", me, sibling) if targets else Failover("ap-southeast-3", sibling, me)
        core.tick(0.0)
        core.observe(ActiveRecordRead(0.0, targets, 1))
        core.observe(RouteView(0.0, (("rtb-1", targets),)))
        for t in range(12):
            core.observe(WitnessProbe(t * 0.5, "eu-west-1", True, sibling_answered=False))
            core.observe(DirectProbe(t * 0.5, direct))
            reasons += [a.reason for a in core.tick(t * 0.5) if isinstance(a, TakeOver)]
    assert len(reasons) == 3
    for reason in reasons:
        assert FailoverRecord(0.0, reason).reason == reason
