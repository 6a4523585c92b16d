"""Routes of other owners that cover a peer's CIDR (a transit gateway's 10.0.0.0/8, a prefix list to a peering,
a VPN): linker refuses to add its more specific route under them unless told to; the internet's routes are fine.
As data (the planner), then against moto (the facts reader resolves prefix lists)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from linker.control.aws import Target
from linker.control.changes import Kind
from linker.control.facts.model import Route
from linker.control.operations import Options, down_link, plan_link, up_link
from linker.control.plan import plan
from linker.errors import ConflictError
from linker.spec import LinkSpec
from tests.control.cloud import inventory, make_vpc
from tests.control.test_plan import PACKAGE, SPEC, bare, facts

E, W = "us-east-1", "eu-west-1"  # 10.10.0.0/16 and 10.20.0.0/16


def with_route(region: str, table: str, route: Route, prefix_lists: tuple = ()):  # type: ignore[no-untyped-def]
    rf = bare(region)
    tables = tuple(replace(t, routes=(*t.routes, route)) if t.id == f"rtb-{table}-{region}" else t
                   for t in rf.route_tables)
    return replace(rf, route_tables=tables, prefix_lists=prefix_lists)


@pytest.mark.parametrize("route, kind", [
    (Route("10.0.0.0/8", "tgw-0abc"), "a transit gateway"),
    (Route("10.16.0.0/12", "pcx-0abc"), "a VPC peering connection"),
    (Route("10.20.0.0/15", "vgw-0abc"), "a virtual private gateway"),
    (Route("10.0.0.0/8", "nat-0abc"), "a NAT gateway"),
    (Route("10.0.0.0/9", "eni-0abc", "eni-0abc"), "a network interface"),
])
def test_a_less_specific_route_of_another_owner_is_refused_with_its_table_target_and_fix(route: Route,
                                                                                        kind: str) -> None:
    east = with_route(E, "priv", route)
    with pytest.raises(ConflictError) as err:
        plan(SPEC, facts(east, bare(W)), PACKAGE)
    message = err.value.message
    assert f"rtb-priv-{E}" in message and route.destination in message and route.target in message
    assert kind in message and "10.20.0.0/16" in message and "take that traffic away" in message
    assert "--override-covering-routes" in (err.value.fix or "")


def test_a_prefix_list_that_covers_a_peer_is_refused_one_that_does_not_is_fine() -> None:
    covering = with_route(E, "main", Route("pl-0abc", "pcx-0abc"), (("pl-0abc", ("10.20.0.0/16", "192.168.0.0/16")),))
    with pytest.raises(ConflictError, match=r"pl-0abc \(10.20.0.0/16\).*pcx-0abc"):
        plan(SPEC, facts(covering, bare(W)), PACKAGE)
    elsewhere = with_route(E, "main", Route("pl-0abc", "tgw-0abc"), (("pl-0abc", ("192.168.0.0/16",)),))
    assert plan(SPEC, facts(elsewhere, bare(W)), PACKAGE)


def test_routes_to_the_internet_and_narrower_or_unrelated_routes_are_fine() -> None:
    for route in (Route("0.0.0.0/0", "igw-1"), Route("10.0.0.0/8", "igw-2"), Route("10.20.5.0/24", "tgw-0abc"),
                  Route("192.168.0.0/16", "tgw-0abc")):
        changes = plan(SPEC, facts(with_route(E, "priv", route), bare(W)), PACKAGE)
        assert any(c.kind == Kind.ROUTE and dict(c.params)["cidr"] == "10.20.0.0/16" for c in changes)


def test_the_user_may_accept_a_covering_route_explicitly() -> None:
    east = with_route(E, "priv", Route("10.0.0.0/8", "tgw-0abc"))
    changes = plan(replace(SPEC, override_covering_routes=True), facts(east, bare(W)), PACKAGE)
    assert (f"rtb-priv-{E}", "10.20.0.0/16") in {(c.target, dict(c.params)["cidr"]) for c in changes
                                                if c.kind == Kind.ROUTE}


def test_against_moto_a_transit_gateway_and_a_prefix_list_route_are_read_and_refused(aws) -> None:  # type: ignore[no-untyped-def]
    east = make_vpc(aws, E, "10.10.0.0/16", tables=1)
    make_vpc(aws, W, "10.20.0.0/16", tables=1)
    ec2 = aws.client("ec2", region_name=E)
    tgw = ec2.create_transit_gateway()["TransitGateway"]["TransitGatewayId"]
    ec2.create_route(RouteTableId=east.main_table, DestinationCidrBlock="10.0.0.0/8", TransitGatewayId=tgw)
    spec = LinkSpec("covered", (E, W))
    with pytest.raises(ConflictError, match=f"{east.main_table} sends 10.0.0.0/8 to {tgw}"):
        plan_link(Target(), spec)
    with pytest.raises(ConflictError, match="transit gateway"):
        up_link(Target(), spec, lambda _: True, options=Options(poll=0.0))
    assert inventory(aws, "covered", [E, W])[E]["params"] == []  # nothing was made

    ec2.delete_route(RouteTableId=east.main_table, DestinationCidrBlock="10.0.0.0/8")
    other = ec2.create_vpc(CidrBlock="10.90.0.0/16")["Vpc"]["VpcId"]
    pcx = ec2.create_vpc_peering_connection(VpcId=east.vpc, PeerVpcId=other)["VpcPeeringConnection"][
        "VpcPeeringConnectionId"]
    pl = ec2.create_managed_prefix_list(PrefixListName="corp", MaxEntries=5, AddressFamily="IPv4",
                                        Entries=[{"Cidr": "10.16.0.0/12"}])["PrefixList"]["PrefixListId"]
    ec2.create_route(RouteTableId=east.main_table, DestinationPrefixListId=pl, VpcPeeringConnectionId=pcx)
    spec = LinkSpec("covered", (E, W), vpcs=((E, east.vpc),))  # the peered VPC is in us-east-1 too
    with pytest.raises(ConflictError, match=f"{pl} \\(10.16.0.0/12\\) to {pcx}"):
        plan_link(Target(), spec)

    accepted = replace(spec, override_covering_routes=True)
    assert up_link(Target(), accepted, lambda _: True, options=Options(poll=0.0))
    routes = ec2.describe_route_tables(RouteTableIds=[east.main_table])["RouteTables"][0]["Routes"]
    assert any(r.get("DestinationCidrBlock") == "10.20.0.0/16" and r.get("NetworkInterfaceId") for r in routes)
    assert up_link(Target(), spec, lambda _: True, options=Options(poll=0.0)) == []  # made: no longer refused
    assert down_link(Target(), "covered", lambda _: True, regions=(E, W), options=Options(poll=0.0))
    routes = ec2.describe_route_tables(RouteTableIds=[east.main_table])["RouteTables"][0]["Routes"]
    assert any(r.get("DestinationPrefixListId") == pl for r in routes)  # the other owner's route is left alone
