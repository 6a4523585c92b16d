"""The planner as data: spec + facts in, changes out (no AWS, no moto)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from linker import naming
from linker.control.changes import Phase, Ref
from linker.control.facts.model import (
    Bucket,
    Eip,
    IamFacts,
    Instance,
    LinkFacts,
    Permission,
    RegionFacts,
    Route,
    RouteTable,
    SecurityGroup,
    Subnet,
    Vpc,
)
from linker.control.membership_doc import PlannedSite, membership_of
from linker.control.package import Package
from linker.control.placement import choose_vpc, public_subnet
from linker.control.plan import gateway_inputs, instance_config, plan
from linker.control.render import role_policy
from linker.control.rollout import Rollout, launch_tags
from linker.errors import CloudError, ConflictError, ManagedElsewhereError, SpecError
from linker.spec import LinkSpec

LINK = "demo"
PACKAGE = Package("linker-0.1.0-py3-none-any.whl", b"wheel", "ab" * 32)
ACCOUNT = "123456789012"
SPEC = LinkSpec(LINK, ("us-east-1", "eu-west-1"))
CIDR = {"us-east-1": "10.10.0.0/16", "eu-west-1": "10.20.0.0/16", "ap-south-1": "10.30.0.0/16"}
IP = {"us-east-1": "198.51.100.1", "eu-west-1": "198.51.100.2", "ap-south-1": "198.51.100.3"}


def bare(region: str, cidr: str | None = None, default_only: bool = False) -> RegionFacts:
    """A region with one VPC: public subnet (own table, 0.0.0.0/0 -> igw), private subnet, main table."""
    cidr = cidr or CIDR[region]
    if default_only:
        vpc = Vpc("vpc-default", ("172.31.0.0/16",), True)
    else:
        vpc = Vpc(f"vpc-{region}", (cidr,), False)
    tables = (
        RouteTable(f"rtb-pub-{region}", vpc.id, False, (f"subnet-pub-{region}",),
                   (Route(vpc.cidrs[0], "local"), Route("0.0.0.0/0", "igw-1"))),
        RouteTable(f"rtb-priv-{region}", vpc.id, False, (f"subnet-priv-{region}",), (Route(vpc.cidrs[0], "local"),)),
        RouteTable(f"rtb-main-{region}", vpc.id, True, (), (Route(vpc.cidrs[0], "local"),)),
    )
    subnets = (Subnet(f"subnet-pub-{region}", vpc.id, f"{region}a"), Subnet(f"subnet-priv-{region}", vpc.id,
                                                                             f"{region}b"))
    return RegionFacts(region, (vpc,), subnets, tables, ami="ami-0123",
                       bucket=Bucket(naming.bucket_name(LINK, region, ACCOUNT)))


def tags(site: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({**naming.base_tags(LINK, site), **extra}.items()))


def built(spec: LinkSpec, region: str) -> RegionFacts:
    """The region as a finished ``up`` of ``spec`` leaves it."""
    rf = bare(region)
    peers = [r for r in spec.regions if r != region]
    eni = f"eni-{region}"
    tables = tuple(replace(t, routes=(*t.routes, *(Route(CIDR[p], eni, eni) for p in peers)),
                           tags=tuple((naming.route_tag(LINK, CIDR[p]), region) for p in peers))
                   for t in rf.route_tables)
    rules = frozenset({Permission("udp", spec.port, spec.port, f"{IP[p]}/32") for p in peers}
                      | {Permission("-1", None, None, CIDR[region])})
    egress = frozenset({Permission("udp", spec.port, spec.port, f"{IP[p]}/32") for p in peers}
                       | {Permission("-1", None, None, CIDR[region]), Permission("tcp", 443, 443, "0.0.0.0/0")})
    role = naming.resource_name(LINK, region)
    doc = membership_of(LINK, [PlannedSite(r, r, IP[r], (CIDR[r],), spec.port, f"i-{r}")
                               for r in spec.regions]).to_json()
    inputs = gateway_inputs(spec, region, naming.bucket_name(LINK, region, ACCOUNT), PACKAGE)
    return replace(
        rf, route_tables=tables, bucket=replace(rf.bucket, exists=True, tags=tags(region), keys=(PACKAGE.key,)),
        eips=(Eip(f"eipalloc-{region}", IP[region], f"eipassoc-{region}", f"i-{region}", tags(region)),),
        security_groups=(SecurityGroup(f"sg-{region}", f"vpc-{region}", rules, tags(region), egress),),
        instances=(Instance(f"i-{region}", "running", eni, f"subnet-pub-{region}", spec.instance_type, False,
                            "required", "2026-01-01", tags(region, **{naming.TAG_CONFIG: instance_config(
                                spec, inputs)}, **launch_tags(PACKAGE))),),
        iam=IamFacts(True, tags(region), role_policy(inputs), (),
                     True, (role,)),
        parameters=((naming.membership_parameter(LINK), doc), (naming.home_parameter(LINK), spec.regions[0])))


def facts(*regions: RegionFacts) -> LinkFacts:
    return LinkFacts(LINK, regions)


def kinds(changes, region: str | None = None) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(c.action, c.kind) for c in changes if region is None or c.region == region]


def test_a_new_link_makes_everything_eips_first_and_no_ssh() -> None:
    changes = plan(SPEC, facts(bare("us-east-1"), bare("eu-west-1")), PACKAGE)
    assert {c.phase for c in changes if c.kind == "eip"} == {Phase.ADDRESS}
    assert all(c.phase > Phase.ADDRESS for c in changes if c.kind not in ("eip", "membership")
               and c.target != naming.home_parameter(LINK))  # the home is recorded in the seed phase too
    assert {(c.region, c.phase, dict(c.params)["value"]) for c in changes if c.target == naming.home_parameter(
        LINK)} == {("us-east-1", Phase.SEED, "us-east-1"), ("eu-west-1", Phase.SEED, "us-east-1")}
    assert ("create", "eip") in kinds(changes, "us-east-1")
    assert kinds(changes, "us-east-1").count(("create", "instance")) == 1
    ingress = next(c for c in changes if c.kind == "security-group-ingress" and c.region == "us-east-1")
    # the peer's tunnel port, and what the gateway forwards: it reaches the ENI from the site's own VPC
    assert set(ingress.param("rules")) == {("udp", 51820, 51820, Ref("eip-ip", "eu-west-1")),
                                           ("-1", None, None, "10.10.0.0/16")}
    assert not any(r[1] == 22 for c in changes if c.kind == "security-group-ingress" for r in c.param("rules"))
    routes = [c for c in changes if c.kind == "route" and c.region == "us-east-1"]
    assert {c.param("table") for c in routes} == {"rtb-pub-us-east-1", "rtb-priv-us-east-1", "rtb-main-us-east-1"}
    assert all(c.param("cidr") == "10.20.0.0/16" and c.param("eni") == Ref("eni", "us-east-1") for c in routes)
    seed = [c for c in changes if c.kind == "membership" and c.phase == Phase.SEED]
    final = [c for c in changes if c.kind == "membership" and c.phase == Phase.MEMBERSHIP]
    assert len(seed) == len(final) == 2


def test_the_instance_is_hardened_and_its_user_data_small_and_secret_free() -> None:
    launch = next(c for c in plan(SPEC, facts(bare("us-east-1"), bare("eu-west-1")), PACKAGE) if c.kind == "instance")
    user_data = launch.param("user_data")
    assert len(user_data.encode()) < 16 * 1024
    assert "PrivateKey" not in user_data and "BEGIN" not in user_data and "aws_secret" not in user_data.lower()
    assert '"link": "demo"' in user_data and "linker-gateway.service" in user_data
    assert launch.param("subnet") == "subnet-pub-us-east-1"


def test_an_existing_link_plans_nothing() -> None:
    assert plan(SPEC, facts(built(SPEC, "us-east-1"), built(SPEC, "eu-west-1")), PACKAGE) == []


def test_default_vpcs_overlap_and_nothing_is_planned() -> None:
    with pytest.raises(SpecError, match=r"Default VPCs are all 172\.31\.0\.0/16"):
        plan(SPEC, facts(bare("us-east-1", default_only=True), bare("eu-west-1", default_only=True)), PACKAGE)


def test_no_public_subnet_is_refused() -> None:
    rf = bare("eu-west-1")
    rf = replace(rf, route_tables=tuple(replace(t, routes=t.routes[:1]) for t in rf.route_tables))
    with pytest.raises(SpecError, match="no public subnet"):
        plan(SPEC, facts(bare("us-east-1"), rf), PACKAGE)


def test_a_foreign_route_to_a_peer_cidr_is_never_overwritten() -> None:
    rf = bare("us-east-1")
    tables = list(rf.route_tables)
    tables[1] = replace(tables[1], routes=(*tables[1].routes, Route("10.20.0.0/16", "pcx-123")))
    with pytest.raises(ConflictError, match="pcx-123"):
        plan(SPEC, facts(replace(rf, route_tables=tuple(tables)), bare("eu-west-1")), PACKAGE)


def test_terraform_managed_link_is_refused() -> None:
    rf = built(SPEC, "eu-west-1")
    rf = replace(rf, eips=(replace(rf.eips[0], tags=tags("eu-west-1", **{naming.TAG_MANAGED_BY: "terraform"})),))
    with pytest.raises(ManagedElsewhereError, match="Terraform"):
        plan(SPEC, facts(built(SPEC, "us-east-1"), rf), PACKAGE)


def test_a_role_of_the_same_name_that_is_not_the_links_is_refused() -> None:
    rf = replace(bare("eu-west-1"), iam=IamFacts(role_exists=True, role_tags=(("team", "x"),)))
    with pytest.raises(ConflictError, match="IAM role"):
        plan(SPEC, facts(bare("us-east-1"), rf), PACKAGE)


def test_no_ami_is_a_cloud_error() -> None:
    with pytest.raises(CloudError, match="AMI"):
        plan(SPEC, facts(bare("us-east-1"), replace(bare("eu-west-1"), ami=None)), PACKAGE)


def test_vpc_choice_rule() -> None:
    default, a, b = Vpc("vpc-d", ("172.31.0.0/16",), True), Vpc("vpc-a", ("10.1.0.0/16",), False), Vpc(
        "vpc-b", ("10.2.0.0/16",), False)
    rf = RegionFacts("r", (default,))
    assert choose_vpc(rf, None) == (default, "the default VPC")
    assert choose_vpc(replace(rf, vpcs=(default, a)), None)[0] == a
    with pytest.raises(SpecError, match="several VPCs"):
        choose_vpc(replace(rf, vpcs=(default, a, b)), None)
    tagged = replace(b, tags=((naming.TAG_SITE, "r"),))
    assert choose_vpc(replace(rf, vpcs=(default, a, tagged)), None)[0] == tagged
    assert choose_vpc(replace(rf, vpcs=(default, a, tagged)), "vpc-a") == (a, "--vpc")
    with pytest.raises(SpecError, match="does not exist"):
        choose_vpc(rf, "vpc-0000000000")


def test_public_subnet_through_the_main_table() -> None:
    vpc = Vpc("vpc-1", ("10.0.0.0/16",), False)
    rf = RegionFacts("r", (vpc,), (Subnet("subnet-1", "vpc-1", "ra"),), (
        RouteTable("rtb-main", "vpc-1", True, (), (Route("0.0.0.0/0", "igw-9"),)),))
    assert public_subnet(rf, "vpc-1") == "subnet-1"
    nat = replace(rf, route_tables=(RouteTable("rtb-main", "vpc-1", True, (), (Route("0.0.0.0/0", "nat-9"),)),))
    assert public_subnet(nat, "vpc-1") is None


def test_a_changed_instance_type_replaces_the_instance_keeps_the_eip_and_moves_routes() -> None:
    bigger = replace(SPEC, instance_type="t3.small")
    changes = plan(bigger, facts(built(SPEC, "us-east-1"), built(SPEC, "eu-west-1")), PACKAGE)
    east = kinds(changes, "us-east-1")
    assert ("create", "eip") not in east
    assert ("create", "instance") in east and ("delete", "instance") in east
    retire = next(c for c in changes if c.kind == "instance" and c.action == "delete" and c.region == "us-east-1")
    assert retire.target == "i-us-east-1" and retire.phase == Phase.CLEANUP
    moved = [c for c in changes if c.kind == "route" and c.region == "us-east-1"]
    assert moved and all(c.action == "update" and c.param("eni") == Ref("eni", "us-east-1") for c in moved)
    assoc = next(c for c in changes if c.kind == "eip-association" and c.region == "us-east-1")
    assert assoc.param("allocation") == "eipalloc-us-east-1"


def test_adding_a_region_updates_the_others_without_replacing_them() -> None:
    three = replace(SPEC, regions=("us-east-1", "eu-west-1", "ap-south-1"))
    changes = plan(three, facts(built(SPEC, "us-east-1"), built(SPEC, "eu-west-1"), bare("ap-south-1")), PACKAGE)
    east = kinds(changes, "us-east-1")
    assert ("create", "instance") not in east and ("delete", "instance") not in east
    assert ("create", "route") in east and ("update", "security-group-ingress") in east
    seed = next(c for c in changes if c.region == "us-east-1" and c.phase == Phase.SEED)
    assert "ap-south-1" in [e.site for e in seed.param("entries")]


def test_removing_a_region_tears_it_down_in_order_and_updates_the_others() -> None:
    three = replace(SPEC, regions=("us-east-1", "eu-west-1", "ap-south-1"))
    changes = plan(SPEC, facts(built(three, "us-east-1"), built(three, "eu-west-1"), built(three, "ap-south-1")),
                   PACKAGE)
    gone = [(c.kind, c.target) for c in changes if c.region == "ap-south-1"]
    order = [k for k, _ in gone]
    assert order.index("route") < order.index("instance") < order.index("instance-terminated") < order.index(
        "instance-profile") < order.index("iam-role") < order.index("security-group") < order.index("eip")
    # the membership document last but the home record, which goes after it (a region that is not the home)
    assert gone[-2:] == [("parameter", naming.membership_parameter(LINK)), ("parameter", naming.home_parameter(LINK))]
    east = [c for c in changes if c.region == "us-east-1"]
    assert {(c.action, c.param("cidr")) for c in east if c.kind == "route"} == {("delete", "10.30.0.0/16")}
    revoked = next(c for c in east if c.kind == "security-group-ingress")
    assert revoked.action == "delete" and ("udp", 51820, 51820, "198.51.100.3/32") in revoked.param("rules")
    final = [c for c in east if c.kind == "membership"][-1]  # once the removed site is gone
    assert final.phase == Phase.PRUNE and [e.site for e in final.param("entries")] == ["us-east-1", "eu-west-1"]
    assert json.loads(built(SPEC, "us-east-1").parameters[0][1])["schema"] == 1


def test_moving_a_site_to_another_vpc_replaces_its_gateway_and_cleans_the_old_vpc() -> None:
    rf = built(SPEC, "us-east-1")
    other = Vpc("vpc-other", ("10.40.0.0/16",), False, ((naming.TAG_SITE, "us-east-1"),))
    rf = replace(rf, vpcs=(*rf.vpcs, other), subnets=(*rf.subnets, Subnet("subnet-o", "vpc-other", "a")),
                 route_tables=(*rf.route_tables, RouteTable("rtb-o", "vpc-other", True, ("subnet-o",), (
                     Route("10.40.0.0/16", "local"), Route("0.0.0.0/0", "igw-2")))))
    changes = plan(SPEC, facts(rf, built(SPEC, "eu-west-1")), PACKAGE)
    east = [c for c in changes if c.region == "us-east-1"]
    assert ("create", "instance") in kinds(east) and ("create", "security-group") in kinds(east)
    cleanup = [(c.kind, c.target) for c in east if c.phase == Phase.CLEANUP]
    assert cleanup == [("instance", "i-us-east-1"), ("instance-terminated", "i-us-east-1"),
                       ("security-group", "sg-us-east-1")]
    old_routes = {c.param("table") for c in east if c.kind == "route" and c.action == "delete"}
    assert old_routes == {"rtb-pub-us-east-1", "rtb-priv-us-east-1", "rtb-main-us-east-1"}
    assert {c.param("table") for c in east if c.kind == "route" and c.action == "create"} == {"rtb-o"}


def test_a_new_linker_version_is_uploaded_and_the_gateways_replaced_on_upgrade() -> None:
    assert kinds(plan(SPEC, facts(bare("us-east-1"), bare("eu-west-1")), PACKAGE), "us-east-1")[:2] == [
        ("create", "bucket"), ("create", "package")]
    newer = Package("linker-0.2.0-py3-none-any.whl", b"newer", "cd" * 32)
    changes = plan(SPEC, facts(built(SPEC, "us-east-1"), built(SPEC, "eu-west-1")), newer, Rollout(upgrade=True))
    east = [c for c in changes if c.region == "us-east-1"]
    assert ("create", "package") in kinds(east) and ("create", "bucket") not in kinds(east)
    assert ("create", "instance") in kinds(east) and ("delete", "instance") in kinds(east)
    old = [c for c in east if c.kind == "package" and c.action == "delete"]
    assert [c.param("key") for c in old] == [PACKAGE.key] and old[0].phase == Phase.CLEANUP
    launch = next(c for c in east if c.kind == "instance" and c.action == "create")
    assert newer.key in launch.param("user_data") and newer.sha256 in launch.param("user_data")


def test_a_bucket_name_taken_by_another_account_is_refused() -> None:
    rf = bare("eu-west-1")
    rf = replace(rf, bucket=replace(rf.bucket, exists=True, accessible=False))
    with pytest.raises(ConflictError, match="bucket"):
        plan(SPEC, facts(bare("us-east-1"), rf), PACKAGE)


def test_a_new_gateway_group_gets_least_privilege_egress_and_loses_the_open_default() -> None:
    changes = plan(SPEC, facts(bare("us-east-1"), bare("eu-west-1")), PACKAGE)
    egress = {(c.region, c.action): dict(c.params)["rules"] for c in changes if c.kind == "security-group-egress"}
    assert egress[("us-east-1", "delete")] == (("-1", None, None, "0.0.0.0/0"),)
    added = egress[("us-east-1", "update")]
    assert ("tcp", 443, 443, "0.0.0.0/0") in added and ("-1", None, None, CIDR["us-east-1"]) in added
    assert [r for r in added if r[0] == "udp"] and all(r[1] == r[2] == SPEC.port for r in added if r[0] == "udp")
    assert not [r for r in added if r[0] == "-1" and r[3] == "0.0.0.0/0"]


def test_an_open_egress_rule_added_by_hand_is_removed() -> None:
    east = built(SPEC, "us-east-1")
    group = east.security_groups[0]
    opened = replace(group, egress=group.egress | {Permission("-1", None, None, "0.0.0.0/0")})
    changes = plan(SPEC, facts(replace(east, security_groups=(opened,)), built(SPEC, "eu-west-1")), PACKAGE)
    assert [(c.action, c.kind, dict(c.params)["rules"]) for c in changes] == [
        ("delete", "security-group-egress", (("-1", None, None, "0.0.0.0/0"),))]


def test_a_managed_policy_attached_to_the_gateway_role_is_detached() -> None:
    """Links made before attached AmazonSSMManagedInstanceCore (every parameter of the account): up detaches it."""
    east = built(SPEC, "us-east-1")
    core = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    changes = plan(SPEC, facts(replace(east, iam=replace(east.iam, attached_policies=(core,))),
                               built(SPEC, "eu-west-1")), PACKAGE)
    assert [(c.action, c.kind, dict(c.params)["arn"]) for c in changes] == [("delete", "iam-attach-policy", core)]


def test_a_public_subnet_in_a_zone_that_does_not_offer_the_type_is_passed_over_or_refused() -> None:
    east = bare("us-east-1")
    offered_elsewhere = replace(east, offered_azs=frozenset({"us-east-1b"}))
    with pytest.raises(SpecError, match=r"t3.micro is not offered .*us-east-1a") as err:
        plan(SPEC, facts(offered_elsewhere, bare("eu-west-1")), PACKAGE)
    assert "describe-instance-type-offerings" in (err.value.fix or "")
    second = Subnet("subnet-pub2-us-east-1", east.subnets[0].vpc_id, "us-east-1b")
    table = next(t for t in east.route_tables if "subnet-pub-us-east-1" in t.subnet_ids)
    both = replace(offered_elsewhere, subnets=(*east.subnets, second), route_tables=tuple(
        replace(t, subnet_ids=(*t.subnet_ids, second.id)) if t is table else t for t in east.route_tables))
    launches = [c for c in plan(SPEC, facts(both, bare("eu-west-1")), PACKAGE) if c.kind == "instance"]
    assert [dict(c.params)["subnet"] for c in launches if c.region == "us-east-1"] == [second.id]
