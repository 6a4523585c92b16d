"""linker's permissions boundary and the partition, as data: the boundary holds every gateway's policy, the plan
makes it first and puts an older role within it, and every ARN linker writes is in the region's partition."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from linker import naming
from linker.cli import main
from linker.control.changes import Phase
from linker.control.iam_policy import (
    BOUNDARY_NAME,
    boundary_arn,
    boundary_policy,
    controller_policy,
    create_boundary_command,
)
from linker.control.partition import partition_of
from linker.control.plan import gateway_inputs, plan
from linker.control.render import role_policy
from tests.control.iam_eval import Decision, Request, evaluate
from tests.control.test_plan import ACCOUNT, LINK, PACKAGE, SPEC, bare, built, facts

BOUNDARY = boundary_arn("aws", ACCOUNT)


def within(region: str) -> tuple[str, str]:
    """The region's facts as read where the boundary exists (the readers fill these two in)."""
    return BOUNDARY if partition_of(region) == "aws" else boundary_arn(partition_of(region), ACCOUNT), region


@pytest.mark.parametrize("region, partition", [("eu-west-1", "aws"), ("cn-north-1", "aws-cn"),
                                               ("us-gov-west-1", "aws-us-gov")])
def test_the_boundary_allows_everything_a_gateway_role_policy_allows(region: str, partition: str) -> None:
    inputs = gateway_inputs(SPEC, region, naming.bucket_name(LINK, region, ACCOUNT), PACKAGE)
    assert inputs.partition == partition
    role = json.loads(role_policy(inputs))
    boundary = boundary_policy(partition)
    for statement in role["Statement"]:
        context = {k.lower(): (v,) for cond in statement.get("Condition", {}).values() for k, v in cond.items()}
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            for resource in resources:
                concrete = resource.replace("*", "x")  # one ARN the statement grants
                request = Request(action, concrete, context)
                assert evaluate([role], request) is Decision.ALLOW
                assert evaluate([boundary], request) is Decision.ALLOW, (action, concrete)


def test_the_boundary_allows_nothing_beyond_a_gateway() -> None:
    boundary = boundary_policy()
    for request in (Request("iam:CreateRole", "arn:aws:iam::1:role/x"),
                    Request("ssm:GetParameter", "arn:aws:ssm:eu-west-1:1:parameter/prod/db"),
                    Request("s3:PutObject", "arn:aws:s3:::linker-a/wheels/x"),
                    Request("ec2:RunInstances", "*"),
                    Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": ("Other",)})):
        assert evaluate([boundary], request) is Decision.IMPLICIT_DENY, request


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_every_arn_of_the_policies_is_in_the_partition(partition: str) -> None:
    for document in (controller_policy(partition), boundary_policy(partition)):
        text = json.dumps(document)
        arns = [w.strip('"[],') for w in text.split() if w.strip('"[],').startswith("arn:")]
        assert arns and all(a.startswith(f"arn:{partition}:") for a in arns), arns


def test_partitions_of_regions() -> None:
    assert [partition_of(r) for r in ("us-east-1", "cn-northwest-1", "us-gov-east-1", "eu-west-1")] == [
        "aws", "aws-cn", "aws-us-gov", "aws"]
    assert boundary_arn("aws-cn", "1") == f"arn:aws-cn:iam::1:policy/linker/{BOUNDARY_NAME}"


def test_a_new_role_is_made_within_the_boundary_and_a_missing_boundary_first() -> None:
    east, west = bare("us-east-1"), bare("eu-west-1")
    east = replace(east, iam=replace(east.iam, boundary_arn=BOUNDARY, boundary_exists=False))
    west = replace(west, iam=replace(west.iam, boundary_arn=BOUNDARY, boundary_exists=False))
    changes = plan(SPEC, facts(east, west), PACKAGE)
    first = changes[0]
    assert (first.phase, first.action, first.kind, first.target) == (Phase.SEED, "create", "iam-boundary", BOUNDARY)
    assert json.loads(first.param("document")) == boundary_policy()
    assert sum(c.kind == "iam-boundary" for c in changes) == 1  # IAM is global: once
    roles = [c for c in changes if c.kind == "iam-role"]
    assert len(roles) == 2 and all(c.param("boundary") == BOUNDARY for c in roles)


def test_an_older_role_is_put_within_the_boundary_before_anything_else_is_done_to_it() -> None:
    east = built(SPEC, "us-east-1")
    core = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    east = replace(east, iam=replace(east.iam, attached_policies=(core,), boundary_arn=BOUNDARY))
    changes = plan(SPEC, facts(east, built(SPEC, "eu-west-1")), PACKAGE)
    assert [(c.action, c.kind) for c in changes] == [("update", "iam-role-boundary"), ("delete", "iam-attach-policy")]
    assert changes[0].param("boundary") == BOUNDARY
    within_it = replace(east, iam=replace(east.iam, attached_policies=(), role_boundary=BOUNDARY))
    assert plan(SPEC, facts(within_it, built(SPEC, "eu-west-1")), PACKAGE) == []


def test_iam_policy_prints_the_boundary_and_other_partitions(capsys: pytest.CaptureFixture[str]) -> None:
    for args, document in ((["--boundary", "--partition", "aws-cn"], boundary_policy("aws-cn")),
                           (["--partition", "aws-us-gov"], controller_policy("aws-us-gov"))):
        try:
            main(["iam-policy", *args])
        except SystemExit as exc:
            assert not exc.code
        assert json.loads(capsys.readouterr().out) == document
    assert "--partition aws-cn" in create_boundary_command("aws-cn")
