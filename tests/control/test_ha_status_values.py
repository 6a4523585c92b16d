"""linker.control.ha_status on facts made by hand: who is active when the record and the reports disagree or one is
missing, and which failover is the site's last. Pure: no AWS."""

from __future__ import annotations

from linker import naming
from linker.contract import (
    FailoverRecord,
    GatewayEntry,
    GatewayHealth,
    Membership,
    SiteEntry,
    active_record_value,
)
from linker.control.facts.model import RegionFacts
from linker.control.ha_status import site_failovers, site_gateways
from linker.control.operations import GatewayStatus

E, LINK = "us-east-1", "pair"
A, B = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"


def facts(*params: tuple[str, str], ha: bool = True) -> RegionFacts:
    gateways = (GatewayEntry(A, f"{E}a", "203.0.113.1", "10.10.1.10"),
                GatewayEntry(B, f"{E}b", "203.0.113.2", "10.10.3.10")) if ha else ()
    site = SiteEntry(E, E, "203.0.113.1", ("10.10.0.0/16",), 51820, A, ha, gateways)
    return RegionFacts(E, parameters=((naming.membership_parameter(LINK), Membership(LINK, (site,)).to_json()),
                                      *params))


def health(instance: str, role: str, failover: FailoverRecord | None = None) -> tuple[str, str]:
    doc = GatewayHealth(LINK, E, 1000.0, (), instance, "0.1.0", role, failover).to_document()
    return naming.gateway_health_parameter(LINK, E, instance), doc


def parse(text: str | None) -> GatewayHealth | None:
    return GatewayHealth.from_json(text) if text else None


def test_a_site_with_one_gateway_is_left_to_the_usual_status() -> None:
    assert site_gateways(facts(ha=False), LINK, parse) is None


def test_roles_come_from_the_record_and_else_from_the_reports() -> None:
    record = (naming.active_parameter(LINK, E), active_record_value(B))
    pair = site_gateways(facts(record, health(A, "active"), health(B, "active")), LINK, parse)
    assert pair is not None
    assert [(g.instance, g.role, g.health.role if g.health else None, g.eip) for g in pair] == [
        (A, "standby", "active", "203.0.113.1"), (B, "active", "active", "203.0.113.2")]
    # no record yet: each gateway's own word; no report either: unknown
    pair = site_gateways(facts(health(A, "active")), LINK, parse)
    assert pair is not None and [(g.instance, g.role, g.state) for g in pair] == [(A, "active", None), (B, None, None)]
    # a malformed record names nobody
    pair = site_gateways(facts((naming.active_parameter(LINK, E), "{}"), health(A, "standby")), LINK, parse)
    assert pair is not None and pair[0].role == "standby"


def test_the_last_failover_is_the_newest_either_gateway_reported() -> None:
    old = FailoverRecord(100.0, "no gateway of the site owns the routes", None, None)
    new = FailoverRecord(900.0, "planned switch", B, None)
    gateways = [GatewayStatus(E, E, A, "running", None, parse(health(A, "active", new)[1]), None, "active", True),
                GatewayStatus(E, E, B, "running", None, parse(health(B, "standby", old)[1]), None, "standby", True),
                GatewayStatus("eu-west-1", "eu-west-1", "i-c", "running", None, None)]
    [summary] = site_failovers(gateways)
    assert (summary.site, summary.active, summary.record, summary.by) == (E, A, new, A)
    assert summary.line(960.0) == (f"{E}: active {A}; last failover 60 s ago: {A} took over from {B} "
                                   "(planned switch), traffic cut not measured")
    assert summary.to_dict()["last_failover"] == {**new.to_dict(), "instance": A}
    [none] = site_failovers([GatewayStatus(E, E, A, None, None, None, None, None, True)])
    assert none.to_dict() == {"site": E, "active": None, "last_failover": None}
    assert none.line(0.0) == f"{E}: active unknown; no failover reported"
