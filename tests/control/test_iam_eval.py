"""The tests' IAM evaluator (tests/control/iam_eval.py) decides as AWS documents: what must be allowed is, what
must be denied is, an explicit Deny wins, an unknown condition key makes a statement not apply."""

from __future__ import annotations

import pytest

from tests.control.iam_eval import Decision, Request, evaluate, matches

BOUNDARY = "arn:aws:iam::123456789012:policy/linker/linker-gateway-boundary"
ANY_BOUNDARY = "arn:aws:iam::*:policy/linker/linker-gateway-boundary"
RT, QT = "aws:ResourceTag/linker:link", "aws:RequestTag/linker:link"


def allow(action: str, resource: str | list[str], condition: dict | None = None, effect: str = "Allow") -> dict:
    statement = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def tags(kind: str, **values: str) -> dict[str, tuple[str, ...]]:
    return {f"aws:{kind}/{k.replace('_', ':')}": (v,) for k, v in values.items()}


CASES = [
    # (name, policy, request, decision)
    ("wildcard resource", allow("ssm:GetParameter", "arn:aws:ssm:*:*:parameter/linker/*"),
     Request("ssm:GetParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/linker/a/b"), Decision.ALLOW),
    ("outside the prefix", allow("ssm:GetParameter", "arn:aws:ssm:*:*:parameter/linker/*"),
     Request("ssm:GetParameter", "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db"), Decision.IMPLICIT_DENY),
    ("public parameter, no account", allow("ssm:GetParameter", "arn:aws:ssm:*:*:parameter/aws/service/*"),
     Request("ssm:GetParameter", "arn:aws:ssm:eu-west-1::parameter/aws/service/x"), Decision.ALLOW),
    ("action is case-insensitive", allow("EC2:describeinstances", "*"),
     Request("ec2:DescribeInstances", "*"), Decision.ALLOW),
    ("another action", allow("ec2:DescribeInstances", "*"), Request("ec2:TerminateInstances", "*"),
     Decision.IMPLICIT_DENY),
    ("resource tag equals", allow("ec2:TerminateInstances", "*", {"StringEquals": {RT: "a"}}),
     Request("ec2:TerminateInstances", "arn:aws:ec2:r:1:instance/i-1", tags("resourcetag", linker_link="a")),
     Decision.ALLOW),
    ("resource tag absent", allow("ec2:TerminateInstances", "*", {"StringLike": {RT: "*"}}),
     Request("ec2:TerminateInstances", "arn:aws:ec2:r:1:instance/i-1"), Decision.IMPLICIT_DENY),
    ("request tag present (Null false)", allow("ec2:RunInstances", "*", {"Null": {QT: "false"}}),
     Request("ec2:RunInstances", "arn:aws:ec2:r:1:instance/*", tags("requesttag", linker_link="x")), Decision.ALLOW),
    ("request tag missing (Null false)", allow("ec2:RunInstances", "*", {"Null": {QT: "false"}}),
     Request("ec2:RunInstances", "arn:aws:ec2:r:1:instance/*"), Decision.IMPLICIT_DENY),
    ("create action", allow("ec2:CreateTags", "*", {"StringEquals": {"ec2:CreateAction": ["RunInstances", "X"]}}),
     Request("ec2:CreateTags", "arn:aws:ec2:r:1:volume/*", {"ec2:createaction": ("RunInstances",)}), Decision.ALLOW),
    ("not at create", allow("ec2:CreateTags", "*", {"StringEquals": {"ec2:CreateAction": "RunInstances"}}),
     Request("ec2:CreateTags", "arn:aws:ec2:r:1:volume/vol-1"), Decision.IMPLICIT_DENY),
    ("tag keys all linker's", allow("ec2:CreateTags", "*", {"ForAllValues:StringLike": {"aws:TagKeys": "l:*"}}),
     Request("ec2:CreateTags", "x", {"aws:tagkeys": ("l:route:a", "l:b")}), Decision.ALLOW),
    ("one tag key not linker's", allow("ec2:CreateTags", "*", {"ForAllValues:StringLike": {"aws:TagKeys": "l:*"}}),
     Request("ec2:CreateTags", "x", {"aws:tagkeys": ("l:a", "Name")}), Decision.IMPLICIT_DENY),
    ("passed to EC2", allow("iam:PassRole", "arn:aws:iam::*:role/linker/*",
                            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
     Request("iam:PassRole", "arn:aws:iam::1:role/linker/r", {"iam:passedtoservice": ("ec2.amazonaws.com",)}),
     Decision.ALLOW),
    ("passed to Lambda", allow("iam:PassRole", "arn:aws:iam::*:role/linker/*",
                               {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
     Request("iam:PassRole", "arn:aws:iam::1:role/linker/r", {"iam:passedtoservice": ("lambda.amazonaws.com",)}),
     Decision.IMPLICIT_DENY),
    ("boundary ArnLike", allow("iam:CreateRole", "*", {"ArnLike": {"iam:PermissionsBoundary": ANY_BOUNDARY}}),
     Request("iam:CreateRole", "arn:aws:iam::1:role/linker/r", {"iam:permissionsboundary": (BOUNDARY,)}),
     Decision.ALLOW),
    ("no boundary", allow("iam:CreateRole", "*", {"ArnLike": {"iam:PermissionsBoundary": BOUNDARY}}),
     Request("iam:CreateRole", "arn:aws:iam::1:role/linker/r"), Decision.IMPLICIT_DENY),
    ("policy ARN not equal", allow("iam:DetachRolePolicy", "*",
                                     {"ArnNotEquals": {"iam:PolicyARN": "arn:aws:iam::aws:policy/A"}}),
     Request("iam:DetachRolePolicy", "r", {"iam:policyarn": ("arn:aws:iam::aws:policy/B",)}), Decision.ALLOW),
    ("negated operator, key absent: holds", allow("iam:X", "*", {"StringNotEquals": {"aws:RequestTag/a": "b"}}),
     Request("iam:X", "r"), Decision.ALLOW),
    ("IfExists, key absent: holds", allow("iam:X", "*", {"StringEqualsIfExists": {"aws:RequestTag/a": "b"}}),
     Request("iam:X", "r"), Decision.ALLOW),
    ("unknown key: the Allow does not apply",
     allow("s3:GetObject", "*", {"StringEquals": {"aws:SourceVpce": "v"}}),
     Request("s3:GetObject", "r", {"aws:sourcevpce": ("v",)}), Decision.IMPLICIT_DENY),
    ("every operator must hold", allow("ec2:RunInstances", "*", {
        "StringEquals": {"aws:RequestTag/linker:link": "a"}, "Null": {"aws:RequestTag/owner": "false"}}),
     Request("ec2:RunInstances", "r", tags("requesttag", linker_link="a")), Decision.IMPLICIT_DENY),
]


@pytest.mark.parametrize("policy, request_, decision", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_policy_allows_exactly_what_it_says(policy: dict, request_: Request, decision: Decision) -> None:
    assert evaluate([policy], request_) is decision


def test_an_explicit_deny_wins_over_any_allow() -> None:
    everything = allow("*", "*")
    no_boundary_removal = allow("iam:DeleteRolePermissionsBoundary", "*", effect="Deny")
    request = Request("iam:DeleteRolePermissionsBoundary", "arn:aws:iam::1:role/linker/r")
    assert evaluate([everything], request) is Decision.ALLOW
    assert evaluate([everything, no_boundary_removal], request) is Decision.DENY
    assert evaluate([no_boundary_removal, everything], request) is Decision.DENY


def test_a_conditioned_deny_applies_only_when_its_condition_holds() -> None:
    only_ours = allow("iam:PutRolePermissionsBoundary", "*", {"ArnNotLike": {"iam:PermissionsBoundary": BOUNDARY}},
                      effect="Deny")
    policies = [allow("iam:*", "*"), only_ours]
    ours = Request("iam:PutRolePermissionsBoundary", "r", {"iam:permissionsboundary": (BOUNDARY,)})
    other = Request("iam:PutRolePermissionsBoundary", "r", {"iam:permissionsboundary": ("arn:aws:iam::1:policy/x",)})
    assert evaluate(policies, ours) is Decision.ALLOW
    assert evaluate(policies, other) is Decision.DENY


def test_an_unknown_operator_is_loud() -> None:
    with pytest.raises(ValueError, match="not simulated"):
        evaluate([allow("iam:X", "*", {"DateGreaterThan": {"aws:RequestTag/a": "2020"}})],
                 Request("iam:X", "r", {"aws:requesttag/a": ("x",)}))


def test_wildcards() -> None:
    assert matches("arn:aws:iam::*:role/linker-*", "arn:aws:iam::1:role/linker-a")
    assert matches("a?c", "abc") and not matches("a?c", "abbc")
    assert matches("arn:aws:s3:::linker-*", "arn:aws:s3:::linker-a/key")  # "*" crosses "/", as in IAM
