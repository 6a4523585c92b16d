"""A link that Terraform manages: ``up``, ``down`` and ``plan`` refuse it before touching anything, saying so and
what to do instead (moto in-process; the resources are made as terraform/modules/gateway makes them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from linker import naming
from linker.cli import main
from linker.control.aws import READ_PREFIXES, Target
from linker.control.operations import Options, down_link, plan_link, up_link
from linker.errors import ExitCode, ManagedElsewhereError
from linker.spec import LinkSpec
from tests.control.cloud import inventory, make_vpc

E, W = "us-east-1", "eu-west-1"
LINK = "tf"


def terraform_site(session: Any, region: str, cidr: str) -> dict[str, str]:
    """What the module's first resources leave in a region: the Elastic IP, the group, the membership."""
    vpc = make_vpc(session, region, cidr, tables=1)
    ec2 = session.client("ec2", region_name=region)
    tags = [{"Key": k, "Value": v} for k, v in naming.base_tags(LINK, region, naming.MANAGED_BY_TERRAFORM).items()]
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": [*tags, {"Key": naming.TAG_ROLE, "Value": "eip"}]}])
    group = ec2.create_security_group(GroupName=naming.resource_name(LINK, region), Description="terraform",
                                      VpcId=vpc.vpc, TagSpecifications=[{"ResourceType": "security-group",
                                                                         "Tags": tags}])
    session.client("ssm", region_name=region).put_parameter(
        Name=naming.membership_parameter(LINK), Type="String", Tags=tags,
        Value=json.dumps({"schema": 1, "link": LINK, "sites": []}))
    return {"eip": eip["AllocationId"], "group": group["GroupId"]}


class Writes:
    """Records every AWS call that is not a read."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        if not model.name.startswith(READ_PREFIXES):
            self.calls.append(model.name)


@pytest.fixture
def terraform_link(aws: Any) -> dict[str, dict[str, str]]:
    return {E: terraform_site(aws, E, "10.10.0.0/16"), W: terraform_site(aws, W, "10.20.0.0/16")}


def test_up_refuses_before_writing_anything(aws: Any, terraform_link: dict[str, dict[str, str]]) -> None:
    before, writes = inventory(aws, LINK, [E, W]), Writes()
    with pytest.raises(ManagedElsewhereError) as err:
        up_link(Target(), LinkSpec(LINK, (E, W)), lambda changes: True,
                options=Options(poll=0.0, timeout=5.0, session=aws, hooks=(("before-call.*.*", writes),)))
    assert writes.calls == []  # not even the lock
    assert inventory(aws, LINK, [E, W]) == before
    assert "managed by Terraform" in err.value.message and terraform_link[E]["eip"] in err.value.message
    assert terraform_link[W]["group"] in err.value.message and "`linker up`" in err.value.message
    assert err.value.fix is not None and "terraform apply" in err.value.fix
    assert err.value.exit_code == ExitCode.USER


def test_down_refuses_before_writing_anything(aws: Any, terraform_link: dict[str, dict[str, str]]) -> None:
    before, writes = inventory(aws, LINK, [E, W]), Writes()
    with pytest.raises(ManagedElsewhereError) as err:
        down_link(Target(), LINK, lambda changes: True, regions=(E, W),
                  options=Options(poll=0.0, timeout=5.0, session=aws, hooks=(("before-call.*.*", writes),)))
    assert writes.calls == [] and inventory(aws, LINK, [E, W]) == before
    assert err.value.fix is not None and "terraform destroy" in err.value.fix


def test_down_finds_the_link_without_being_told_its_regions(aws: Any,
                                                            terraform_link: dict[str, dict[str, str]]) -> None:
    with pytest.raises(ManagedElsewhereError, match=r"eu-west-1: eipalloc-.*us-east-1: eipalloc-"):
        down_link(Target(), LINK, lambda changes: True, options=Options(poll=0.0, timeout=5.0, session=aws))


def test_plan_says_so_too(aws: Any, terraform_link: dict[str, dict[str, str]]) -> None:
    with pytest.raises(ManagedElsewhereError, match="managed by Terraform"):
        plan_link(Target(), LinkSpec(LINK, (E, W)), session=aws)


def test_one_terraform_region_is_enough(aws: Any) -> None:
    terraform_site(aws, E, "10.10.0.0/16")
    make_vpc(aws, W, "10.20.0.0/16", tables=1)
    with pytest.raises(ManagedElsewhereError, match=f"{E}: eipalloc-"):
        up_link(Target(), LinkSpec(LINK, (E, W)), lambda changes: True,
                options=Options(poll=0.0, timeout=5.0, session=aws))
    assert inventory(aws, LINK, [W])[W] == {"eips": 0, "groups": 0, "instances": 0, "params": [],
                                            "route_tags": [], "eni_routes": []}


@pytest.mark.parametrize("command", [["up", E, W, "--yes", "--no-wait"], ["down", "--yes", "--region", E],
                                     ["plan", E, W]])
def test_the_cli_exits_2_naming_the_problem_and_the_fix(aws: Any, terraform_link: dict[str, dict[str, str]],
                                                        capsys: pytest.CaptureFixture[str],
                                                        command: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--name", LINK, "--json"])
    assert exit_.value.code == ExitCode.USER
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"] == "managed_elsewhere" and "Terraform" in doc["message"] and "terraform" in doc["fix"]
