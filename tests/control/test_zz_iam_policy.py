"""``linker iam-policy`` covers every AWS action the controller called in this session's control tests.

Named to run last in tests/control, so the recorder (conftest.CALLED) has seen the other suites; run alone it
still drives plan, up, status and down itself.
"""

from __future__ import annotations

from linker.control.aws import Target
from linker.control.iam_policy import action_of, allowed_actions
from linker.control.operations import Options, down_link, plan_link, status_link, up_link
from linker.spec import LinkSpec
from tests.control.cloud import ReadyReporter, make_vpc
from tests.control.conftest import CALLED


def test_every_action_the_controller_called_is_in_the_policy(aws) -> None:  # type: ignore[no-untyped-def]
    make_vpc(aws, "us-east-1", "10.10.0.0/16", tables=1)
    make_vpc(aws, "eu-west-1", "10.20.0.0/16", tables=1)
    spec = LinkSpec("policy", ("us-east-1", "eu-west-1"))
    plan_link(Target(), spec)
    up_link(Target(), spec, lambda _: True, options=Options(poll=0.0))
    # a replacement (make before break), its successor's ready report played by ReadyReporter
    up_link(Target(), LinkSpec("policy", spec.regions, instance_type="t3.small"), lambda _: True,
            options=Options(poll=0.0, hooks=ReadyReporter(aws).hooks()))
    status_link(Target(), "policy")
    down_link(Target(), "policy", lambda _: True, options=Options(poll=0.0))
    assert {"ec2:RunInstances", "ssm:PutParameter", "iam:CreateRole", "ec2:DeleteRoute", "s3:PutObject"} <= CALLED
    assert len(CALLED) >= 30
    # iam:CreatePolicy: up makes the permissions boundary only where it is missing and the identity may (an
    # administrator's); the controller's policy never grants it
    missing = sorted({action_of(op) for op in CALLED} - allowed_actions() - {"iam:CreatePolicy"})
    assert not missing, f"add to linker/control/iam_policy.py: {missing}"
