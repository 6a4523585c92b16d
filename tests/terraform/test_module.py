"""The Terraform module makes what ``linker up`` makes: for the same inputs, the same kinds of resource with the
same names, tags, ports, security-group rules, IAM documents, user-data, routes and membership document.

The reference is the CLI itself, run against moto in-process (conftest.cli_link); the module is evaluated from its
HCL (tests/terraform/hcl.py), through the example that wires two regions into one link.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from linker import naming
from linker.contract import Membership
from linker.control import package
from linker.control.changes import Kind
from linker.control.facts import ami_parameter
from linker.control.render import USER_DATA_LIMIT
from linker.errors import SpecError
from linker.spec import gateway_architecture, validate_link_name
from tests.terraform.conftest import EXAMPLE, LINK, REPO, CliLink, Module, context, policy, site_inputs, tags
from tests.terraform.hcl import HclError, Unknown

E, W = "us-east-1", "eu-west-1"
MODULE = REPO / "terraform" / "modules" / "gateway"

# Each resource type of the module, and the kinds of change the CLI's plan makes for the same thing.
KINDS = {
    "aws_s3_bucket": {"bucket"}, "aws_s3_bucket_public_access_block": {"bucket"}, "aws_s3_object": {"package"},
    "aws_ssm_parameter": {"membership"}, "aws_eip": {"eip"}, "aws_eip_association": {"eip-association"},
    "aws_security_group": {"security-group", "security-group-ingress", "security-group-egress"},
    "aws_iam_role": {"iam-role"},
    "aws_iam_role_policy": {"iam-role-policy"}, "aws_iam_role_policy_attachment": {"iam-attach-policy"},
    "aws_iam_instance_profile": {"instance-profile", "instance-profile-role"}, "aws_instance": {"instance"},
    "aws_route": {"route"}, "terraform_data": {"route"},  # route_target: where the routes are made to point
}
# Resource types that stand for different CLI changes by name: the tags on route tables (ha.tf).
KINDS_BY_NAME = {("aws_ec2_tag", "route_table"): {"route-table-tag"}, ("aws_ec2_tag", "route"): {"route"}}


def kinds_made(module: Module) -> set[str]:
    """The CLI's kinds of change for the resources the module makes for its inputs (an optional resource, such as
    the second gateway's, counts only when present)."""
    made = [r for r in module.resources if module.present(*r)]
    return set().union(*(KINDS_BY_NAME.get(r) or KINDS[r[0]] for r in made))


def gateway(example: Module, region: str) -> Module:
    return example.child("east" if region == E else "west")


def terraform_tags(cli: dict[str, str]) -> dict[str, str]:
    """The CLI's tags of a resource as the module must set them: managed by Terraform instead."""
    return {**cli, naming.TAG_MANAGED_BY: naming.MANAGED_BY_TERRAFORM}


def rules(perms: list[dict[str, Any]]) -> set[tuple[str, int | None, int | None, str]]:
    """EC2 permissions flattened; protocol -1 has no ports (Terraform spells that 0-0)."""
    return {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r["CidrIp"]) for p in perms for r in p["IpRanges"]}


def block_rules(blocks: list[dict[str, Any]]) -> set[tuple[str, int | None, int | None, str]]:
    out = set()
    for b in blocks:
        ports = (None, None) if b["protocol"] == "-1" else (b["from_port"], b["to_port"])
        out |= {(b["protocol"], *ports, c) for c in b["cidr_blocks"]}
    return out


def test_the_module_makes_every_kind_of_resource_the_cli_makes(cli_link: CliLink, example: Module) -> None:
    module = gateway(example, E)
    unmapped = {r for r in module.resources if r not in KINDS_BY_NAME and r[0] not in KINDS}
    assert not unmapped, f"resources without a CLI counterpart: {unmapped}"
    # the home record (a parameter) only says where the CLI takes its lock; Terraform locks its own state
    assert kinds_made(module) == cli_link.kinds - {Kind.PARAMETER}


@pytest.mark.parametrize("region", [E, W])
def test_same_names_and_tags_as_the_cli_but_managed_by_terraform(cli_link: CliLink, example: Module,
                                                                 region: str) -> None:
    cli, module = cli_link.sites[region], gateway(example, region)
    assert module.attributes("aws_eip", "gateway")["tags"] == terraform_tags(tags(cli.eip["Tags"]))
    group = module.attributes("aws_security_group", "gateway")
    assert group["tags"] == terraform_tags(tags(cli.group["Tags"]))
    assert (group["name"], group["description"], group["vpc_id"]) == (cli.group["GroupName"],
                                                                      cli.group["Description"], cli.vpc)
    # linker:config too (the hash of what the spec decides), and the pinned build: both see the same configuration
    assert module.attributes("aws_instance", "gateway")["tags"] == terraform_tags(tags(cli.instance["Tags"]))
    role = module.attributes("aws_iam_role", "gateway")
    assert role["tags"] == terraform_tags(tags(cli.role["Tags"]))
    assert (role["name"], role["path"], role["description"]) == (cli.role["RoleName"], cli.role["Path"],
                                                                 cli.role["Description"])
    profile = module.attributes("aws_iam_instance_profile", "gateway")
    assert profile["tags"] == terraform_tags(tags(cli.profile["Tags"]))
    assert (profile["name"], profile["path"]) == (cli.profile["InstanceProfileName"], cli.profile["Path"])
    bucket = module.attributes("aws_s3_bucket", "wheel")
    assert (bucket["bucket"], bucket["tags"]) == (cli.bucket, terraform_tags(cli.bucket_tags))


@pytest.mark.parametrize("region", [E, W])
def test_security_group_admits_the_tunnel_port_from_each_peer_eip_and_its_own_vpc_only(
        cli_link: CliLink, example: Module, region: str) -> None:
    cli, module = cli_link.sites[region], gateway(example, region)
    ingress = block_rules(module.blocks("aws_security_group", "gateway", "ingress"))
    assert ingress == rules(cli.group["IpPermissions"])
    peer = cli_link.sites[W if region == E else E]
    assert ingress == {("udp", 51999, 51999, f"{peer.eip['PublicIp']}/32"), ("-1", None, None, "10.10.0.0/16"
                       if region == E else "10.20.0.0/16")}  # no SSH, nothing else
    assert block_rules(module.blocks("aws_security_group", "gateway", "egress")) == rules(
        cli.group["IpPermissionsEgress"])


@pytest.mark.parametrize("region", [E, W])
def test_instance_role_has_the_cli_policies_and_no_managed_policy(cli_link: CliLink, example: Module,
                                                                  region: str) -> None:
    cli, module = cli_link.sites[region], gateway(example, region)
    role = module.attributes("aws_iam_role", "gateway")
    assert json.loads(role["assume_role_policy"]) == policy(cli.role["AssumeRolePolicyDocument"])
    inline = module.attributes("aws_iam_role_policy", "gateway")
    assert inline["name"] == naming.INLINE_POLICY and inline["role"] == cli.role["RoleName"]
    assert json.loads(inline["policy"]) == policy(cli.role_policy)  # same actions, same resources
    assert cli.attached == []
    assert not [r for r in module.resources if r[0] == "aws_iam_role_policy_attachment"]
    assert module.attributes("aws_iam_instance_profile", "gateway")["role"] == cli.role["RoleName"]


@pytest.mark.parametrize("region", [E, W])
def test_instance_runs_the_cli_user_data_hardened_the_same_way(cli_link: CliLink, example: Module,
                                                               region: str) -> None:
    cli, module = cli_link.sites[region], gateway(example, region)
    instance = module.attributes("aws_instance", "gateway")
    assert instance["user_data"] == cli.user_data  # byte for byte, wheel bucket, key and hash included
    assert len(instance["user_data"].encode()) < USER_DATA_LIMIT
    assert (instance["instance_type"], instance["subnet_id"], instance["ami"]) == (
        cli.instance["InstanceType"], cli.subnet, cli.instance["ImageId"])
    assert instance["source_dest_check"] is cli.source_dest_check is False
    assert instance["iam_instance_profile"] == cli.instance["IamInstanceProfile"]["Arn"].rsplit("/", 1)[1]
    [metadata] = module.blocks("aws_instance", "gateway", "metadata_options")
    assert metadata["http_tokens"] == cli.instance["MetadataOptions"]["HttpTokens"] == "required"
    assert metadata["http_put_response_hop_limit"] == 1
    assert not module.blocks("aws_instance", "gateway", "ebs_block_device")


@pytest.mark.parametrize("region", [E, W])
def test_the_wheel_goes_where_the_cli_puts_it(cli_link: CliLink, example: Module, region: str) -> None:
    cli, module = cli_link.sites[region], gateway(example, region)
    obj = module.attributes("aws_s3_object", "wheel")
    assert (obj["bucket"], [obj["key"]]) == (cli.bucket, cli.bucket_keys)
    block = module.attributes("aws_s3_bucket_public_access_block", "wheel")
    assert {k: block[k] for k in ("block_public_acls", "ignore_public_acls", "block_public_policy",
                                  "restrict_public_buckets")} == {
        "block_public_acls": cli.public_access["BlockPublicAcls"],
        "ignore_public_acls": cli.public_access["IgnorePublicAcls"],
        "block_public_policy": cli.public_access["BlockPublicPolicy"],
        "restrict_public_buckets": cli.public_access["RestrictPublicBuckets"]}


@pytest.mark.parametrize("region", [E, W])
def test_routes_to_each_peer_cidr_in_each_table_through_the_gateway(cli_link: CliLink, example: Module,
                                                                    region: str) -> None:
    cli, module = cli_link.sites[region], gateway(example, region)
    routes = module.instances("aws_route", "to_peer")
    assert {(r["route_table_id"], r["destination_cidr_block"]) for r in routes.values()} == cli.routes
    prefix = "module.east." if region == E else "module.west."
    assert {r["network_interface_id"] for r in routes.values()} == {
        Unknown(f"{prefix}aws_instance.gateway.primary_network_interface_id")}  # this site's own gateway


@pytest.mark.parametrize("region", [E, W])
def test_membership_document_is_the_cli_schema_in_each_region(cli_link: CliLink, example: Module,
                                                              region: str) -> None:
    cli, module = cli_link.sites[region], gateway(example, region)
    param = module.attributes("aws_ssm_parameter", "membership")
    assert (param["name"], param["type"]) == (naming.membership_parameter(LINK), "String")
    assert param["tags"][naming.TAG_MANAGED_BY] == naming.MANAGED_BY_TERRAFORM
    # same keys, types, order of sites; but no gateway named: Terraform replaces an instance in place (not make
    # before break), so its agents use the site's key (linker.control.rollout)
    cli_doc = json.loads(cli.membership)
    for entry in cli_doc["sites"]:
        entry.pop("gateway")
    assert json.loads(param["value"]) == cli_doc
    # and what the gateway agent reads from it is the same link
    assert Membership.from_json(param["value"]) == Membership.from_json(json.dumps(cli_doc))
    assert param["value"] == gateway(example, E if region == W else W).attributes(
        "aws_ssm_parameter", "membership")["value"]


@pytest.mark.parametrize("instance_type", ["t3.micro", "t4g.small", "c7gn.large", "m6gd.xlarge", "c5.large",
                                           "a1.medium"])
def test_gateway_image_follows_the_instance_architecture_as_in_the_cli(cli_link: CliLink, wheel: Path,
                                                                       instance_type: str) -> None:
    module = Module(MODULE, {
        **{k: (lambda v=v: v) for k, v in site_inputs(cli_link.sites[E]).items() if k != "region"},
        "site": lambda: E, "wheel": lambda: str(wheel), "instance_type": lambda: instance_type},
        context(cli_link), providers={"aws": {"region": E}})
    assert module.local("ami_parameter") == ami_parameter(gateway_architecture(instance_type))


def test_evaluator_refuses_what_it_does_not_know(cli_link: CliLink, wheel: Path) -> None:
    module = Module(EXAMPLE, {"wheel": lambda: str(wheel), "east": lambda: {}, "west": lambda: {}},
                    context(cli_link))
    with pytest.raises(HclError, match="no element 'region'"):
        module.child("east").var("site")
    with pytest.raises(HclError, match="not variables of the module"):
        Module(EXAMPLE, {"nonsense": lambda: 1}, context(cli_link))


@pytest.mark.parametrize("name", ["demo", "a", "prod-eu-2", "x" * 24, "x" * 25, "Demo", "-lead", "a_b", ""])
def test_link_names_the_module_accepts_are_the_cli_ones(cli_link: CliLink, wheel: Path, name: str) -> None:
    module = Module(MODULE, {"link": lambda: name, "site": lambda: E, "wheel": lambda: str(wheel)},
                    context(cli_link), providers={"aws": {"region": E}})
    try:
        validate_link_name(name)
        cli_accepts = True
    except SpecError:
        cli_accepts = False
    if cli_accepts:
        assert module.var("link") == name
    else:
        with pytest.raises(HclError, match="1-24 lowercase letters"):
            module.var("link")


def test_the_wheel_must_be_a_linker_wheel(cli_link: CliLink, tmp_path: Path) -> None:
    module = Module(MODULE, {"site": lambda: E, "wheel": lambda: str(tmp_path / "other-1.0.tar.gz")},
                    context(cli_link), providers={"aws": {"region": E}})
    with pytest.raises(HclError, match="linker wheel"):
        module.var("wheel")


def test_package_command_writes_the_wheel_the_cli_uploads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert package.main([str(tmp_path)]) == 0
    built = package.build()
    assert (tmp_path / built.filename).read_bytes() == built.data
    assert capsys.readouterr().out.split() == [str(tmp_path / built.filename), "sha256", built.sha256]
    assert package.main([str(tmp_path / "missing")]) == 2
