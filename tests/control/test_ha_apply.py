"""``up --ha`` against moto: two gateways per site in two zones, routes to the lower instance id, idempotence,
the way back to one gateway, ``down`` (faults: test_ha_faults.py)."""

from __future__ import annotations

from typing import Any

import pytest

from linker import naming
from linker.contract import Membership
from linker.control.aws import Target
from linker.control.changes import Action, Kind
from linker.control.operations import Options, down_link, plan_link, up_link
from linker.errors import SpecError
from linker.spec import LinkSpec
from tests.control.cloud import SiteVpc, inventory, make_vpc

E, W = "us-east-1", "eu-west-1"
FAST = Options(poll=0.0, timeout=5.0)
HA = LinkSpec("pair", (E, W), ha=True)
ONE = LinkSpec("pair", (E, W))
FLT = [{"Name": f"tag:{naming.TAG_LINK}", "Values": ["pair"]}]


def yes(_changes: object) -> bool:
    return True


def two_zones(aws: Any, region: str, cidr: str) -> SiteVpc:
    """A VPC whose main table sends 0.0.0.0/0 to the internet: public subnets in zones a and b."""
    vpc = make_vpc(aws, region, cidr, tables=1)
    net = cidr.split(".")
    aws.client("ec2", region_name=region).create_subnet(VpcId=vpc.vpc, CidrBlock=f"{net[0]}.{net[1]}.3.0/24",
                                                        AvailabilityZone=f"{region}b")
    return vpc


def gateways(aws: Any, region: str) -> list[dict[str, Any]]:
    ec2 = aws.client("ec2", region_name=region)
    return sorted((i for r in ec2.describe_instances(Filters=[*FLT, {"Name": "instance-state-name", "Values": [
        "pending", "running"]}])["Reservations"] for i in r["Instances"]), key=lambda i: i["InstanceId"])


def membership(aws: Any, region: str) -> Membership:
    ssm = aws.client("ssm", region_name=region)
    return Membership.from_json(ssm.get_parameter(Name=naming.membership_parameter("pair"))["Parameter"]["Value"])


def test_ha_refuses_a_vpc_with_public_subnets_in_one_zone_before_touching_anything(aws) -> None:  # type: ignore[no-untyped-def]
    vpc = make_vpc(aws, E, "10.10.0.0/16", tables=1)
    two_zones(aws, W, "10.20.0.0/16")
    with pytest.raises(SpecError) as info:
        plan_link(Target(), HA)
    assert vpc.vpc in info.value.message and "one zone only" in info.value.message
    assert "another availability zone" in (info.value.fix or "") and "without --ha" in (info.value.fix or "")
    with pytest.raises(SpecError):
        up_link(Target(), HA, yes, options=FAST)
    left = inventory(aws, "pair", [E, W])
    assert not left["roles"] and not left["buckets"]
    assert all(left[r]["eips"] == left[r]["instances"] == left[r]["groups"] == 0 for r in (E, W))


def test_up_ha_makes_two_gateways_per_site_twice_changes_nothing_and_down_removes_both(aws) -> None:  # type: ignore[no-untyped-def]
    east = two_zones(aws, E, "10.10.0.0/16")
    two_zones(aws, W, "10.20.0.0/16")
    assert up_link(Target(), HA, yes, options=FAST)
    first = inventory(aws, "pair", [E, W])
    assert all(first[r]["eips"] == 2 and first[r]["instances"] == 2 and first[r]["groups"] == 1 for r in (E, W))

    ec2 = aws.client("ec2", region_name=E)
    pair = gateways(aws, E)
    assert {i["Placement"]["AvailabilityZone"] for i in pair} == {f"{E}a", f"{E}b"}
    eips = {a["InstanceId"]: a["PublicIp"] for a in ec2.describe_addresses(Filters=FLT)["Addresses"]}
    assert set(eips) == {i["InstanceId"] for i in pair}
    # the routes go to the lower instance id (docs/HA.md rule 3)
    lower = pair[0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    routes = ec2.describe_route_tables(RouteTableIds=[east.main_table])["RouteTables"][0]["Routes"]
    assert {r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") for r in routes}["10.20.0.0/16"] == lower
    # and the table is tagged for the site's gateways, which may move routes only in such tables (their role)
    tags = ec2.describe_route_tables(RouteTableIds=[east.main_table])["RouteTables"][0]["Tags"]
    assert {"Key": naming.route_table_tag("pair"), "Value": E} in tags
    # each site's group lets in both gateways of the peer
    west_ips = {a["PublicIp"] for a in aws.client("ec2", region_name=W).describe_addresses(Filters=FLT)["Addresses"]}
    group = ec2.describe_security_groups(Filters=FLT)["SecurityGroups"][0]
    sources = {r["CidrIp"] for p in group["IpPermissions"] if p["IpProtocol"] == "udp" for r in p["IpRanges"]}
    assert sources == {f"{ip}/32" for ip in west_ips}
    # the membership lists both gateways of each site, and names the lower as the site's own
    for region in (E, W):
        site = membership(aws, E).site(region)
        assert site is not None and site.ha and len(site.gateways) == 2
        listed = gateways(aws, region)
        assert [(g.instance, g.az, g.tunnel) for g in site.gateways] == [
            (i["InstanceId"], i["Placement"]["AvailabilityZone"], i["PrivateIpAddress"]) for i in listed]
        assert site.gateway == listed[0]["InstanceId"] and site.eip == site.gateways[0].eip
    assert {g.eip for g in membership(aws, W).site(E).gateways} == set(eips.values())  # type: ignore[union-attr]

    policy = aws.client("iam").get_role_policy(RoleName="linker-pair-us-east-1",
                                               PolicyName=naming.INLINE_POLICY)["PolicyDocument"]
    assert {"ec2:ReplaceRoute", "ec2:DescribeRouteTables"} <= {a for st in policy["Statement"] for a in st["Action"]}

    assert plan_link(Target(), HA) == []
    assert up_link(Target(), HA, yes, options=FAST) == []
    assert inventory(aws, "pair", [E, W]) == first

    # a failover moved the routes to the higher id: up --ha moves nothing back (the gateways own the routes); the
    # membership names the new active as the site's own gateway (what an agent older than HA peers with)
    higher = pair[1]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.replace_route(RouteTableId=east.main_table, DestinationCidrBlock="10.20.0.0/16", NetworkInterfaceId=higher)
    assert {c.kind for c in plan_link(Target(), HA)} == {Kind.MEMBERSHIP}
    up_link(Target(), HA, yes, options=FAST)
    assert membership(aws, W).site(E).gateway == pair[1]["InstanceId"]  # type: ignore[union-attr]
    assert plan_link(Target(), HA) == []

    assert down_link(Target(), "pair", yes, options=FAST)
    gone = inventory(aws, "pair", [E, W])
    assert not gone["roles"] and not gone["buckets"] and all(not any(gone[r].values()) for r in (E, W))


def test_up_ha_on_a_link_with_one_gateway_adds_the_second_and_keeps_the_first(aws) -> None:  # type: ignore[no-untyped-def]
    two_zones(aws, E, "10.10.0.0/16")
    two_zones(aws, W, "10.20.0.0/16")
    up_link(Target(), ONE, yes, options=FAST)
    firsts = {r: [i["InstanceId"] for i in gateways(aws, r)] for r in (E, W)}
    planned = plan_link(Target(), HA)
    assert not [c for c in planned if c.action == Action.DELETE or c.kind == Kind.ROUTE]  # nothing moves or goes
    up_link(Target(), HA, yes, options=FAST)
    for r in (E, W):
        now = [i["InstanceId"] for i in gateways(aws, r)]
        assert len(now) == 2 and set(firsts[r]) < set(now)
        site = membership(aws, r).site(r)
        # the routes stay at the first gateway, which the membership names as the site's own
        assert site is not None and site.ha and site.gateway == firsts[r][0]
    assert plan_link(Target(), HA) == []


def test_up_without_ha_says_what_it_removes_then_removes_it(aws) -> None:  # type: ignore[no-untyped-def]
    two_zones(aws, E, "10.10.0.0/16")
    two_zones(aws, W, "10.20.0.0/16")
    up_link(Target(), HA, yes, options=FAST)
    firsts = {r: next(i["InstanceId"] for i in gateways(aws, r) if naming.TAG_SLOT not in
                      {t["Key"] for t in i["Tags"]}) for r in (E, W)}
    seconds = {r: next(i["InstanceId"] for i in gateways(aws, r) if i["InstanceId"] != firsts[r]) for r in (E, W)}

    planned = plan_link(Target(), ONE)
    removals = {(c.region, c.kind, c.target) for c in planned if c.action == Action.DELETE}
    assert {(r, Kind.INSTANCE, seconds[r]) for r in (E, W)} <= removals
    assert {r for r, kind, _ in removals if kind == Kind.EIP} == {E, W}
    assert not [c for c in planned if c.action == Action.CREATE or (c.kind == Kind.INSTANCE and c.target in
                                                                     firsts.values())]
    assert len(gateways(aws, E)) == 2  # plan changed nothing

    up_link(Target(), ONE, yes, options=FAST)
    after = inventory(aws, "pair", [E, W])
    assert all(after[r]["eips"] == after[r]["instances"] == 1 for r in (E, W))
    assert {r: [i["InstanceId"] for i in gateways(aws, r)] for r in (E, W)} == {r: [firsts[r]] for r in (E, W)}
    site = membership(aws, W).site(E)
    assert site is not None and not site.ha and site.gateways == () and site.gateway == firsts[E]
    routes = [r for t in aws.client("ec2", region_name=E).describe_route_tables()["RouteTables"] for r in t["Routes"]
              if r.get("DestinationCidrBlock") == "10.20.0.0/16"]
    first_eni = gateways(aws, E)[0]["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert routes and all(r.get("NetworkInterfaceId") == first_eni for r in routes)
    tagged = [t for r in (E, W) for t in aws.client("ec2", region_name=r).describe_route_tables()["RouteTables"]
              if naming.route_table_tag("pair") in {tag["Key"] for tag in t.get("Tags", [])}]
    assert tagged == []
    iam = aws.client("iam")
    policy = iam.get_role_policy(RoleName="linker-pair-us-east-1", PolicyName=naming.INLINE_POLICY)["PolicyDocument"]
    assert not [a for st in policy["Statement"] for a in st["Action"] if a.startswith("ec2:")]
    assert plan_link(Target(), ONE) == []
