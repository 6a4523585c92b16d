"""The module with ``ha = true`` makes what ``linker up --ha`` makes (docs/HA.md, "The controller's side"): the
second gateway and its EIP tagged linker:slot=2 in another zone, the routes to the lower instance id's ENI, the
route tables tagged for the site's gateways, the role's ReplaceRoute statement, both EIPs of a peer let in, and
the membership listing both gateways of each site.

The reference is the CLI in moto (``up --ha`` of two sites whose VPCs have public subnets in two zones); the
example is evaluated from its HCL with the CLI's instances, addresses and subnets as what AWS would give it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from linker import naming
from linker.contract import Membership
from linker.control.aws import Target
from linker.control.operations import Options, plan_link, up_link
from linker.spec import LinkSpec
from tests.control.cloud import make_vpc
from tests.terraform.conftest import EXAMPLE, LINK, PORT, E, W, policy, tags
from tests.terraform.hcl import Context, Module
from tests.terraform.test_module import block_rules, kinds_made, rules, terraform_tags

FLT = [{"Name": f"tag:{naming.TAG_LINK}", "Values": [LINK]}]
# An account of its own in moto: the package's link without ha (conftest.cli_link) lives in moto's default one,
# with the same link name, while this module's tests run.
HA_ACCOUNT = "210987654321"


@dataclass(frozen=True)
class HaSite:
    """What ``linker up --ha`` made in one region, as AWS reports it."""

    region: str
    vpc: str
    cidrs: list[str]
    tables: list[str]
    zones: dict[str, str]  # subnet -> availability zone
    first: dict[str, Any]  # the instance without a slot tag
    second: dict[str, Any]  # linker:slot=2
    eips: dict[str, dict[str, Any]]  # instance -> its address
    group: dict[str, Any]
    role_policy: dict[str, Any]
    membership: str
    table_tags: set[tuple[str, str, str]]  # (table, key, value) of the linker:route: tags
    routes: dict[tuple[str, str], str]  # (table, destination) -> ENI, of the routes to a gateway

    def instance(self, name: str) -> dict[str, Any]:
        return self.first if name == "gateway" else self.second


@dataclass(frozen=True)
class HaLink:
    kinds: set[str]
    sites: dict[str, HaSite]


def two_zones(session: Any, region: str, cidr: str) -> str:
    """A VPC whose main table sends 0.0.0.0/0 to the internet: public subnets in zones a and b."""
    vpc = make_vpc(session, region, cidr, tables=1)
    net = cidr.split(".")
    session.client("ec2", region_name=region).create_subnet(VpcId=vpc.vpc, CidrBlock=f"{net[0]}.{net[1]}.3.0/24",
                                                            AvailabilityZone=f"{region}b")
    return vpc.vpc


def _site(session: Any, region: str, vpc: str) -> HaSite:
    ec2, ssm, iam = (session.client(s, region_name=region) for s in ("ec2", "ssm", "iam"))
    instances = [i for r in ec2.describe_instances(Filters=FLT)["Reservations"] for i in r["Instances"]]
    [first] = [i for i in instances if naming.TAG_SLOT not in tags(i.get("Tags"))]
    [second] = [i for i in instances if tags(i.get("Tags")).get(naming.TAG_SLOT) == naming.SECOND_SLOT]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    enis = {i["NetworkInterfaces"][0]["NetworkInterfaceId"] for i in instances}
    name = naming.resource_name(LINK, region)
    vpc_doc = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]
    return HaSite(
        region=region, vpc=vpc, cidrs=[a["CidrBlock"] for a in vpc_doc["CidrBlockAssociationSet"]],
        tables=sorted(t["RouteTableId"] for t in tables),
        zones={s["SubnetId"]: s["AvailabilityZone"] for s in subnets}, first=first, second=second,
        eips={a["InstanceId"]: a for a in ec2.describe_addresses(Filters=FLT)["Addresses"]},
        group=ec2.describe_security_groups(Filters=FLT)["SecurityGroups"][0],
        role_policy=iam.get_role_policy(RoleName=name, PolicyName=naming.INLINE_POLICY)["PolicyDocument"],
        membership=ssm.get_parameter(Name=naming.membership_parameter(LINK))["Parameter"]["Value"],
        table_tags={(t["RouteTableId"], k, v) for t in tables for k, v in tags(t.get("Tags")).items()
                    if k.startswith("linker:route:")},
        routes={(t["RouteTableId"], r["DestinationCidrBlock"]): r["NetworkInterfaceId"] for t in tables
                for r in t["Routes"] if r.get("NetworkInterfaceId") in enis})


@pytest.fixture(scope="module")
def cli_ha() -> Iterator[HaLink]:
    """``linker up us-east-1 eu-west-1 --name demo --port 51999 --ha`` against moto in-process."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "LINKER_ENDPOINT_URL"):
            mp.delenv(var, raising=False)
        for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                           ("AWS_DEFAULT_REGION", E), ("AWS_CONFIG_FILE", "/nonexistent"),
                           ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"), ("AWS_EC2_METADATA_DISABLED", "true"),
                           ("MOTO_ACCOUNT_ID", HA_ACCOUNT)):
            mp.setenv(var, value)
        with mock_aws():
            session = boto3.session.Session()
            east, west = two_zones(session, E, "10.10.0.0/16"), two_zones(session, W, "10.20.0.0/16")
            spec = LinkSpec(LINK, (E, W), port=PORT, ha=True)
            kinds = {c.kind for c in plan_link(Target(), spec, session=session)}
            up_link(Target(), spec, lambda changes: True, options=Options(poll=0.0, timeout=5.0, session=session))
            yield HaLink(kinds, {E: _site(session, E, east), W: _site(session, W, west)})


def ha_context(cli: HaLink) -> Context:
    """Data sources and apply-time values as AWS would give them for the CLI's VPCs, instances and addresses."""

    def site_of(module: Module) -> HaSite:
        return cli.sites[str(module.providers["aws"]["region"])]

    def data(module: Module, rtype: str, name: str) -> dict[str, Any]:
        site = site_of(module)
        subnet = site.instance(name)["SubnetId"]
        return {
            "aws_region": {"name": site.region},
            "aws_partition": {"partition": "aws"},
            "aws_caller_identity": {"account_id": HA_ACCOUNT},
            "aws_vpc": {"id": site.vpc, "cidr_block_associations": [{"cidr_block": c, "state": "associated"}
                                                                    for c in site.cidrs]},
            "aws_ssm_parameter": {"value": site.first["ImageId"]},
            "aws_subnet": {"id": subnet, "vpc_id": site.vpc, "availability_zone": site.zones[subnet]},
        }[rtype]

    def known(module: Module, rtype: str, name: str, attr: str) -> Any:
        site = site_of(module)
        if rtype == "aws_instance":
            instance = site.instance(name)
            return {"id": instance["InstanceId"], "private_ip": instance["PrivateIpAddress"],
                    "primary_network_interface_id": instance["NetworkInterfaces"][0]["NetworkInterfaceId"]}.get(attr)
        if (rtype, attr) == ("aws_eip", "public_ip"):
            return site.eips[site.instance(name)["InstanceId"]]["PublicIp"]
        if (rtype, attr) in (("aws_s3_bucket", "id"), ("aws_s3_bucket", "bucket")):
            return module.attributes(rtype, name)["bucket"]
        if (rtype, attr) in (("aws_iam_role", "name"), ("aws_iam_role", "id"), ("aws_iam_instance_profile", "name")):
            return module.attributes(rtype, name)["name"]
        return None

    return Context(data, known)


@pytest.fixture(scope="module")
def example(cli_ha: HaLink, wheel: Path) -> Module:
    """terraform/examples/two-region with ha = true, the CLI's VPCs and subnets and the controller's wheel."""

    def inputs(site: HaSite) -> dict[str, Any]:
        return {"region": site.region, "vpc_id": site.vpc, "subnet_id": site.first["SubnetId"],
                "second_subnet_id": site.second["SubnetId"], "route_table_ids": site.tables}

    given = {"link": LINK, "port": PORT, "wheel": str(wheel), "ha": True, "east": inputs(cli_ha.sites[E]),
             "west": inputs(cli_ha.sites[W])}
    return Module(EXAMPLE, {k: (lambda v=v: v) for k, v in given.items()}, ha_context(cli_ha))


def gateway(example: Module, region: str) -> Module:
    return example.child("east" if region == E else "west")


def test_the_module_makes_every_kind_of_resource_the_cli_makes_with_ha(cli_ha: HaLink, example: Module) -> None:
    from linker.control.changes import Kind
    assert Kind.ROUTE_TABLE_TAG in cli_ha.kinds
    assert kinds_made(gateway(example, E)) == cli_ha.kinds - {Kind.PARAMETER}


@pytest.mark.parametrize("region", [E, W])
def test_second_gateway_and_its_eip_as_the_cli_makes_them(cli_ha: HaLink, example: Module, region: str) -> None:
    cli, module = cli_ha.sites[region], gateway(example, region)
    second = module.attributes("aws_instance", "second")
    assert second["tags"] == terraform_tags(tags(cli.second["Tags"]))  # linker:slot=2, Name <name>-2, config
    assert module.attributes("aws_instance", "gateway")["tags"] == terraform_tags(tags(cli.first["Tags"]))
    assert second["subnet_id"] == cli.second["SubnetId"]
    assert cli.zones[cli.second["SubnetId"]] != cli.zones[cli.first["SubnetId"]]
    assert (second["instance_type"], second["ami"], second["source_dest_check"]) == (
        cli.second["InstanceType"], cli.second["ImageId"], False)
    assert second["user_data"] == module.attributes("aws_instance", "gateway")["user_data"]
    eips = {i: tags(a["Tags"]) for i, a in cli.eips.items()}
    assert module.attributes("aws_eip", "second")["tags"] == terraform_tags(eips[cli.second["InstanceId"]])
    assert module.attributes("aws_eip", "gateway")["tags"] == terraform_tags(eips[cli.first["InstanceId"]])


@pytest.mark.parametrize("region", [E, W])
def test_routes_start_at_the_lower_instance_id_and_tables_are_tagged(cli_ha: HaLink, example: Module,
                                                                     region: str) -> None:
    cli, module = cli_ha.sites[region], gateway(example, region)
    routes = module.instances("aws_route", "to_peer")
    assert {(r["route_table_id"], r["destination_cidr_block"]): r["network_interface_id"]
            for r in routes.values()} == cli.routes
    lower = min((cli.first, cli.second), key=lambda i: i["InstanceId"])
    assert set(cli.routes.values()) == {lower["NetworkInterfaces"][0]["NetworkInterfaceId"]}
    made = {(t["resource_id"], t["key"], t["value"]) for name in ("route_table", "route")
            for t in module.instances("aws_ec2_tag", name).values()}
    assert made == cli.table_tags
    assert (cli.tables[0], naming.route_table_tag(LINK), region) in made


@pytest.mark.parametrize("region", [E, W])
def test_role_policy_is_the_clis_with_ha(cli_ha: HaLink, example: Module, region: str) -> None:
    module = gateway(example, region)
    inline = json.loads(module.attributes("aws_iam_role_policy", "gateway")["policy"])
    assert inline == policy(cli_ha.sites[region].role_policy)
    moves = [st for st in inline["Statement"] if "ec2:ReplaceRoute" in st["Action"]]
    assert [st["Condition"] for st in moves] == [
        {"StringEquals": {f"ec2:ResourceTag/{naming.route_table_tag(LINK)}": region}}]


@pytest.mark.parametrize("region", [E, W])
def test_security_group_admits_both_eips_of_the_peer(cli_ha: HaLink, example: Module, region: str) -> None:
    cli, module = cli_ha.sites[region], gateway(example, region)
    ingress = block_rules(module.blocks("aws_security_group", "gateway", "ingress"))
    assert ingress == rules(cli.group["IpPermissions"])
    peer = cli_ha.sites[W if region == E else E]
    assert {c for p, _, _, c in ingress if p == "udp"} == {f"{a['PublicIp']}/32" for a in peer.eips.values()}
    assert block_rules(module.blocks("aws_security_group", "gateway", "egress")) == rules(
        cli.group["IpPermissionsEgress"])


@pytest.mark.parametrize("region", [E, W])
def test_membership_lists_both_gateways_of_each_site_as_the_cli(cli_ha: HaLink, example: Module,
                                                                region: str) -> None:
    module = gateway(example, region)
    value = module.attributes("aws_ssm_parameter", "membership")["value"]
    cli_doc = json.loads(cli_ha.sites[region].membership)
    for entry in cli_doc["sites"]:
        entry.pop("gateway")  # Terraform names none (test_module.py)
    assert json.loads(value) == cli_doc
    parsed = Membership.from_json(value)
    assert all(s.ha and len(s.gateways) == 2 for s in parsed.sites)
    assert value == gateway(example, E if region == W else W).attributes("aws_ssm_parameter", "membership")["value"]
