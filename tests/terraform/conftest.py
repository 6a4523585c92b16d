"""Fixtures of the Terraform tests: the CLI's own result in moto (the reference the module is compared with) and
the module evaluated for the same inputs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from linker import naming
from linker.control import package
from linker.control.aws import Target
from linker.control.operations import Options, plan_link, up_link
from linker.spec import LinkSpec
from tests.control.cloud import make_vpc
from tests.terraform.hcl import Context, Module

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "terraform" / "examples" / "two-region"
ACCOUNT = "123456789012"  # moto's account
E, W = "us-east-1", "eu-west-1"
LINK, PORT = "demo", 51999


@dataclass(frozen=True)
class CliSite:
    """What ``linker up`` made in one region, as AWS reports it."""

    region: str
    vpc: str
    cidrs: list[str]
    subnet: str
    tables: list[str]
    eip: dict[str, Any]
    group: dict[str, Any]
    instance: dict[str, Any]
    user_data: str
    source_dest_check: bool
    role: dict[str, Any]
    role_policy: dict[str, Any]
    attached: list[str]
    profile: dict[str, Any]
    bucket: str
    bucket_tags: dict[str, str]
    public_access: dict[str, bool]
    bucket_keys: list[str]
    membership: str
    routes: set[tuple[str, str]]  # (table, destination) of the routes to the gateway's ENI


@dataclass(frozen=True)
class CliLink:
    kinds: set[str]  # what the CLI's plan of a fresh link makes, as Change kinds
    sites: dict[str, CliSite]


def tags(items: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def _site(session: Any, region: str, vpc: str) -> CliSite:
    ec2, ssm, iam, s3 = (session.client(s, region_name=region) for s in ("ec2", "ssm", "iam", "s3"))
    flt = [{"Name": f"tag:{naming.TAG_LINK}", "Values": [LINK]}]
    eip = ec2.describe_addresses(Filters=flt)["Addresses"][0]
    group = ec2.describe_security_groups(Filters=flt)["SecurityGroups"][0]
    instance = ec2.describe_instances(Filters=flt)["Reservations"][0]["Instances"][0]
    iid = instance["InstanceId"]
    user_data = base64.b64decode(ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")[
        "UserData"]["Value"]).decode()
    sdc = ec2.describe_instance_attribute(InstanceId=iid, Attribute="sourceDestCheck")["SourceDestCheck"]["Value"]
    name = naming.resource_name(LINK, region)
    bucket = naming.bucket_name(LINK, region, ACCOUNT)
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    vpc_doc = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]
    return CliSite(
        region=region, vpc=vpc, cidrs=[a["CidrBlock"] for a in vpc_doc["CidrBlockAssociationSet"]],
        subnet=instance["SubnetId"], tables=sorted(t["RouteTableId"] for t in tables), eip=eip, group=group,
        instance=instance, user_data=user_data, source_dest_check=bool(sdc), role=iam.get_role(RoleName=name)["Role"],
        role_policy=iam.get_role_policy(RoleName=name, PolicyName=naming.INLINE_POLICY)["PolicyDocument"],
        attached=[p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]],
        profile=iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"], bucket=bucket,
        bucket_tags=tags(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]),
        public_access=s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        bucket_keys=[o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]],
        membership=ssm.get_parameter(Name=naming.membership_parameter(LINK))["Parameter"]["Value"],
        routes={(t["RouteTableId"], r["DestinationCidrBlock"]) for t in tables for r in t["Routes"]
                if r.get("NetworkInterfaceId") == eni})


@pytest.fixture(scope="package")
def cli_link() -> Iterator[CliLink]:
    """``linker up us-east-1 eu-west-1 --name demo --port 51999`` against moto in-process, once for the package."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "LINKER_ENDPOINT_URL"):
            mp.delenv(var, raising=False)
        for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                           ("AWS_DEFAULT_REGION", E), ("AWS_CONFIG_FILE", "/nonexistent"),
                           ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"), ("MOTO_IAM_LOAD_MANAGED_POLICIES", "true"),
                           ("AWS_EC2_METADATA_DISABLED", "true")):
            mp.setenv(var, value)
        with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
            session = boto3.session.Session()
            east, west = make_vpc(session, E, "10.10.0.0/16"), make_vpc(session, W, "10.20.0.0/16")
            spec = LinkSpec(LINK, (E, W), port=PORT)
            kinds = {c.kind for c in plan_link(Target(), spec, session=session)}
            up_link(Target(), spec, lambda changes: True, options=Options(poll=0.0, timeout=5.0, session=session))
            yield CliLink(kinds, {E: _site(session, E, east.vpc), W: _site(session, W, west.vpc)})


@pytest.fixture(scope="package")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The controller's wheel, as ``python -m linker.control.package DIR`` writes it for the module."""
    return package.write(tmp_path_factory.mktemp("wheel"))


def site_inputs(site: CliSite) -> dict[str, Any]:
    # second_subnet_id: the example's optional attribute, null unless given (the evaluator applies no type defaults)
    return {"region": site.region, "vpc_id": site.vpc, "subnet_id": site.subnet, "second_subnet_id": None,
            "route_table_ids": site.tables}


def context(cli: CliLink) -> Context:
    """Data sources and apply-time values as AWS would give them for the CLI's VPCs and Elastic IPs."""

    def region_of(module: Module) -> str:
        return str(module.providers["aws"]["region"])

    def data(module: Module, rtype: str, name: str) -> dict[str, Any]:
        site = cli.sites[region_of(module)]
        return {
            "aws_region": {"name": site.region},
            "aws_partition": {"partition": "aws"},
            "aws_caller_identity": {"account_id": ACCOUNT},
            "aws_vpc": {"id": site.vpc, "cidr_block_associations": [{"cidr_block": c, "state": "associated"}
                                                                    for c in site.cidrs]},
            "aws_ssm_parameter": {"value": site.instance["ImageId"]},
        }[rtype]

    def known(module: Module, rtype: str, name: str, attr: str) -> Any:
        if (rtype, attr) == ("aws_eip", "public_ip"):
            return cli.sites[region_of(module)].eip["PublicIp"]
        if (rtype, attr) in (("aws_s3_bucket", "id"), ("aws_s3_bucket", "bucket")):
            return module.attributes(rtype, name)["bucket"]
        if (rtype, attr) in (("aws_iam_role", "name"), ("aws_iam_role", "id"), ("aws_iam_instance_profile", "name")):
            return module.attributes(rtype, name)["name"]
        return None

    return Context(data, known)


@pytest.fixture(scope="package")
def example(cli_link: CliLink, wheel: Path) -> Module:
    """terraform/examples/two-region with the CLI's VPCs and the controller's wheel."""
    inputs = {"link": LINK, "port": PORT, "wheel": str(wheel), "east": site_inputs(cli_link.sites[E]),
              "west": site_inputs(cli_link.sites[W])}
    return Module(EXAMPLE, {k: (lambda v=v: v) for k, v in inputs.items()}, context(cli_link))


def policy(doc: Any) -> dict[str, Any]:
    """A policy document as a dict, whether IAM returned it as a dict or (URL-encoded) JSON text."""
    if isinstance(doc, str):
        from urllib.parse import unquote
        return dict(json.loads(unquote(doc)))
    return dict(doc)
