"""Planning ``--ha`` as data (facts in, changes out): the second gateway's changes, the zone rule, the routes to
the lower instance id, the membership listing both; without ``--ha`` nothing of it appears."""

from __future__ import annotations

from dataclasses import replace

import pytest

from linker import naming
from linker.control.changes import Action, Kind, Lower, Phase, Ref
from linker.control.facts.model import Eip, RegionFacts, Route, Subnet
from linker.control.plan import plan
from linker.control.plan_ha import second_key
from linker.errors import SpecError
from tests.control.test_plan import PACKAGE, SPEC, bare, built, facts, tags

E, W = "us-east-1", "eu-west-1"
HA = replace(SPEC, ha=True)


def two_zones(rf: RegionFacts) -> RegionFacts:
    """``rf`` with a second public subnet, in zone b, on the public table."""
    vpc = rf.vpcs[0].id
    tables = tuple(replace(t, subnet_ids=(*t.subnet_ids, f"subnet-pub2-{rf.region}")) if t.id.startswith("rtb-pub")
                   else t for t in rf.route_tables)
    return replace(rf, subnets=(*rf.subnets, Subnet(f"subnet-pub2-{rf.region}", vpc, f"{rf.region}b")),
                   route_tables=tables)


def test_a_vpc_with_public_subnets_in_one_zone_is_refused_naming_it() -> None:
    with pytest.raises(SpecError, match=f"VPC vpc-{E}'s public subnets .* one zone only \\({E}a\\)") as info:
        plan(HA, facts(bare(E), two_zones(bare(W))), PACKAGE)
    assert f"add a public subnet of vpc-{E} in another availability zone" in (info.value.fix or "")
    assert plan(SPEC, facts(bare(E), bare(W)), PACKAGE)  # without --ha the same VPCs are fine


def test_a_new_ha_link_plans_two_gateways_per_site_and_routes_to_the_lower() -> None:
    changes = plan(HA, facts(two_zones(bare(E)), two_zones(bare(W))), PACKAGE)
    east = [c for c in changes if c.region == E]
    launches = [c for c in east if (c.action, c.kind) == (Action.CREATE, Kind.INSTANCE)]
    assert [c.param("subnet") for c in launches] == [f"subnet-pub-{E}", f"subnet-pub2-{E}"]
    assert launches[1].param("ref") == second_key(E) and (naming.TAG_SLOT, "2") in launches[1].param("tags")
    assert launches[0].param("config") == launches[1].param("config")  # one launch configuration for both
    eips = [c for c in east if (c.action, c.kind) == (Action.CREATE, Kind.EIP)]
    assert len(eips) == 2 and all(c.phase == Phase.ADDRESS for c in eips)
    rules = {r for c in east if c.kind == Kind.SECURITY_GROUP_INGRESS for r in c.param("rules")}
    assert {("udp", 51820, 51820, Ref("eip-ip", W)), ("udp", 51820, 51820, Ref("eip-ip", second_key(W)))} <= rules
    routes = [c for c in east if c.kind == Kind.ROUTE]
    assert routes and all(c.param("eni") == Lower(((Ref("instance", E), Ref("eni", E)),
                                                   (Ref("instance", second_key(E)), Ref("eni", second_key(E)))))
                          for c in routes)
    tagged = {c.target for c in east if c.kind == Kind.ROUTE_TABLE_TAG and c.action == Action.UPDATE}
    assert tagged == {f"rtb-pub-{E}", f"rtb-priv-{E}", f"rtb-main-{E}"}
    final = next(c for c in east if c.kind == Kind.MEMBERSHIP and c.phase == Phase.MEMBERSHIP)
    site = next(p for p in final.param("entries") if p.site == E)
    assert site.ha and [g.az for g in site.gateways] == [f"{E}a", f"{E}b"]


def ha_built(region: str, second_subnet: str, second_id: str) -> RegionFacts:
    """``built`` for HA with a second gateway ``second_id`` (running, its EIP associated) in ``second_subnet``."""
    rf = two_zones(built(HA, region))
    first = rf.instances[0]
    second = replace(first, id=second_id, eni_id=f"eni-{second_id}", subnet_id=second_subnet,
                     tags=tuple(sorted({**dict(first.tags), naming.TAG_SLOT: "2"}.items())), private_ip="10.0.0.9")
    eip = Eip(f"eipalloc-2-{region}", "203.0.113.9", "eipassoc-2", second_id, tags(region, **{naming.TAG_SLOT: "2"}))
    return replace(rf, instances=(first, second), eips=(*rf.eips, eip))


def test_a_second_gateway_in_the_first_ones_zone_is_replaced() -> None:
    changes = plan(HA, facts(ha_built(E, f"subnet-pub-{E}", "i-0same"), two_zones(bare(W))), PACKAGE)
    east = [c for c in changes if c.region == E]
    assert (Action.DELETE, Kind.INSTANCE, "i-0same") in {(c.action, c.kind, c.target) for c in east}
    assert [c.param("subnet") for c in east if (c.action, c.kind) == (Action.CREATE, Kind.INSTANCE)] == \
        [f"subnet-pub2-{E}"]


def test_routes_to_a_retired_gateway_move_to_the_lower_id_and_routes_to_either_stay() -> None:
    rf = ha_built(E, f"subnet-pub2-{E}", "i-0aaa")  # lower than the first's id, i-us-east-1
    stale = tuple(replace(t, routes=tuple(Route(r.destination, "eni-gone", "eni-gone") if r.eni else r
                                          for r in t.routes)) if t.id == f"rtb-main-{E}" else t
                  for t in rf.route_tables)
    changes = plan(HA, facts(replace(rf, route_tables=stale), two_zones(bare(W))), PACKAGE)
    moved = {(c.target, c.param("eni")) for c in changes if c.kind == Kind.ROUTE and c.region == E}
    assert moved == {(f"rtb-main-{E}", "eni-i-0aaa")}  # the others point at the first gateway: left there


def test_without_ha_an_ha_site_loses_its_second_gateway() -> None:
    rf = ha_built(E, f"subnet-pub2-{E}", "i-0aaa")
    rf = replace(rf, parameters=(*rf.parameters, (naming.active_parameter(SPEC.name, E), "{}")))
    changes = plan(SPEC, facts(rf, built(SPEC, W)), PACKAGE)
    removed = {(c.kind, c.target) for c in changes if c.action == Action.DELETE and c.region == E}
    assert {(Kind.INSTANCE, "i-0aaa"), (Kind.EIP, f"eipalloc-2-{E}"),
            (Kind.PARAMETER, naming.active_parameter(SPEC.name, E))} <= removed
    assert not [c for c in changes if c.action == Action.CREATE]


def test_without_ha_nothing_of_it_is_planned() -> None:
    assert plan(SPEC, facts(built(SPEC, E), built(SPEC, W)), PACKAGE) == []
