"""The rolling replacement of a site with two gateways, as data (docs/HA.md "Rolling replacement"): the standby
(the gateway the routes do not point at) is replaced first, the active kept as it is until a planned switch to
its sibling, which comes after everything else of the pass; the controller moves no route."""

from __future__ import annotations

from dataclasses import replace

from linker import naming
from linker.control.changes import Action, Change, Kind, Phase, Ref
from linker.control.facts.model import RegionFacts, Route
from linker.control.membership_doc import PlannedGateway, PlannedSite, membership_of
from linker.control.plan import plan
from linker.control.plan_ha import second_key
from linker.control.rollout import Rollout
from tests.control.test_ha_plan import HA, ha_built, two_zones
from tests.control.test_plan import CIDR, LINK, bare, facts
from tests.control.test_rollout_plan import NEWER

E, W = "us-east-1", "eu-west-1"
UPGRADE = Rollout(upgrade=True)


def pair(region: str, active: str = "first") -> RegionFacts:
    """A finished ``up --ha`` of ``region``: the first gateway ``i-<region>``, the second ``i-0<region>`` in zone b;
    the routes point at ``active`` (first or second), and the stored membership says so."""
    rf = ha_built(region, f"subnet-pub2-{region}", f"i-0{region}")
    if active == "second":
        eni = f"eni-i-0{region}"
        rf = replace(rf, route_tables=tuple(replace(t, routes=tuple(
            Route(r.destination, eni, eni) if r.eni else r for r in t.routes)) for t in rf.route_tables))
    return rf


def stored(*regions: RegionFacts, actives: dict[str, str]) -> tuple[RegionFacts, ...]:
    """``regions`` with the membership listing both gateways of each, ``actives`` naming each site's active."""
    sites = []
    for rf in regions:
        gateways = tuple(PlannedGateway(i.id, f"{rf.region}{'b' if i.id.startswith('i-0') else 'a'}",
                                        next(e.public_ip for e in rf.eips if e.instance_id == i.id), i.private_ip)
                         for i in rf.instances)
        active = next(g for g in gateways if g.instance == actives[rf.region])
        sites.append(PlannedSite(rf.region, rf.region, active.eip, (CIDR[rf.region],), 51820, active.instance, True,
                                 gateways))
    doc = membership_of(LINK, sites).to_json()
    name = naming.membership_parameter(LINK)
    return tuple(replace(rf, parameters=tuple((k, doc if k == name else v) for k, v in rf.parameters))
                 for rf in regions)


def build(rf: RegionFacts, instance: str, package_key: str) -> RegionFacts:
    """``rf`` with ``instance`` pinned to the build ``package_key`` (as if launched by that controller)."""
    return replace(rf, instances=tuple(replace(i, tags=tuple((k, package_key if k == naming.TAG_PACKAGE else v)
                                                             for k, v in i.tags)) if i.id == instance else i
                                       for i in rf.instances))


def of(changes: list[Change], region: str, *kinds: Kind) -> list[Change]:
    return [c for c in changes if c.region == region and (not kinds or c.kind in kinds)]


def test_an_upgrade_replaces_the_standby_then_switches_and_keeps_the_active_for_the_next_pass() -> None:
    changes = plan(HA, facts(*stored(pair(E), pair(W), actives={E: f"i-{E}", W: f"i-{W}"})), NEWER, UPGRADE)
    east = of(changes, E)
    launches = [c for c in east if (c.action, c.kind) == (Action.CREATE, Kind.INSTANCE)]
    assert [c.param("ref") for c in launches] == [second_key(E)]  # the standby's slot only
    assert {(c.action, c.target) for c in of(changes, E, Kind.INSTANCE)} == {
        (Action.CREATE, launches[0].target), (Action.DELETE, f"i-0{E}")}  # the active is neither replaced nor gone
    assert not of(changes, E, Kind.ROUTE)  # the gateways move the routes, the controller does not
    switch, note = of(changes, E, Kind.ACTIVE_SWITCH, Kind.ROLLING)
    assert switch.phase == Phase.HANDOVER == max(c.phase for c in changes)
    assert (switch.action, switch.target) == (Action.UPDATE, naming.switch_parameter(LINK, E))
    assert switch.param("to") == Ref("instance", second_key(E)) and switch.param("from") == f"i-{E}"
    assert (note.action, note.target) == (Action.NOTE, f"i-{E}") and "replaced once" in note.reason
    # no version note for the held active: the rolling note says what happens to it
    assert not of(changes, E, Kind.GATEWAY_VERSION)
    # the membership swaps the old standby for the new one in one write, the active still named
    final = next(c for c in east if c.kind == Kind.MEMBERSHIP and c.phase == Phase.MEMBERSHIP)
    site = next(p for p in final.param("entries") if p.site == E)
    assert site.gateway == f"i-{E}" and [g.instance for g in site.gateways] == [f"i-{E}", Ref("instance",
                                                                                              second_key(E))]
    assert not [c for c in changes if c.phase == Phase.SEED]  # what serves now stays listed until then


def test_after_a_failover_the_standby_is_the_first_gateway_and_is_replaced_first() -> None:
    rfs = stored(pair(E, "second"), pair(W), actives={E: f"i-0{E}", W: f"i-{W}"})
    changes = plan(HA, facts(*rfs), NEWER, UPGRADE)
    launches = [c for c in of(changes, E, Kind.INSTANCE) if c.action == Action.CREATE]
    assert [c.param("ref") for c in launches] == [None]  # the first slot's own references
    (switch,) = of(changes, E, Kind.ACTIVE_SWITCH)
    assert switch.param("to") == Ref("instance", E) and switch.param("from") == f"i-0{E}"
    assert (Action.DELETE, f"i-{E}") in {(c.action, c.target) for c in of(changes, E, Kind.INSTANCE)}
    assert f"i-0{E}" not in {c.target for c in of(changes, E, Kind.INSTANCE)}
    assert not of(changes, E, Kind.ROUTE)
    assert [c.param("instance") for c in of(changes, E, Kind.EIP_ASSOCIATION)] == [Ref("instance", E)]
    assert not [c for c in changes if c.phase == Phase.SEED]


def test_a_due_standby_alone_is_replaced_without_a_switch() -> None:
    # the second pass of an upgrade: the new active (second) runs the new build, the old active is the standby
    east = build(pair(E, "second"), f"i-0{E}", NEWER.key)
    rfs = stored(east, build(build(pair(W), f"i-{W}", NEWER.key), f"i-0{W}", NEWER.key),
                 actives={E: f"i-0{E}", W: f"i-{W}"})
    changes = plan(HA, facts(*rfs), NEWER, UPGRADE)
    assert not of(changes, E, Kind.ACTIVE_SWITCH, Kind.ROLLING)
    assert not of(changes, W, Kind.INSTANCE, Kind.ACTIVE_SWITCH)  # both of its gateways run the new build
    assert {(c.action, c.target) for c in of(changes, E, Kind.INSTANCE)} >= {(Action.DELETE, f"i-{E}")}
    assert not of(changes, E, Kind.ROUTE)


def test_a_due_active_with_a_current_standby_is_switched_away_from_at_once() -> None:
    east = build(pair(E), f"i-0{E}", NEWER.key)  # the standby already runs the new build
    rfs = stored(east, build(build(pair(W), f"i-{W}", NEWER.key), f"i-0{W}", NEWER.key),
                 actives={E: f"i-{E}", W: f"i-{W}"})
    changes = plan(HA, facts(*rfs), NEWER, UPGRADE)
    assert not of(changes, E, Kind.INSTANCE)  # nothing launched or terminated in this pass
    (switch,) = of(changes, E, Kind.ACTIVE_SWITCH)
    assert switch.param("to") == f"i-0{E}" and switch.param("from") == f"i-{E}"


def test_without_an_owner_of_the_routes_each_gateway_is_planned_on_its_own() -> None:
    rf = pair(E)
    mixed = tuple(replace(t, routes=tuple(Route(r.destination, f"eni-i-0{E}", f"eni-i-0{E}") if r.eni else r
                                          for r in t.routes)) if t.id == f"rtb-main-{E}" else t
                  for t in rf.route_tables)
    changes = plan(HA, facts(replace(rf, route_tables=mixed), two_zones(bare(W))), NEWER, UPGRADE)
    assert not of(changes, E, Kind.ACTIVE_SWITCH)
    assert {c.target for c in of(changes, E, Kind.INSTANCE) if c.action == Action.DELETE} == {f"i-{E}", f"i-0{E}"}
