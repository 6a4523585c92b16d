"""The policy ``linker iam-policy`` prints, held by a user against a moto server that enforces IAM as AWS does
(resource ARNs and conditions: tests/control/iam_server.py): plan, up, status and down work with it, runs that
fail half way (test_faults' injector) or meet a resource not visible yet (test_eventual's) recover with it, and
what it must not allow is denied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from linker import naming
from linker.control.aws import Clients, Target
from linker.control.iam_policy import boundary_arn, controller_policy
from linker.control.operations import Options, down_link, up_link
from linker.errors import CloudError, ExitCode
from linker.spec import LinkSpec
from tests.control.cloud import inventory, make_vpc
from tests.control.iam_server import EnforcedCloud, enforce
from tests.control.test_cli_server import run
from tests.control.test_eventual import AFTER_CREATE, NotYetVisible
from tests.control.test_faults import INJECTOR, Died

E, W = "us-east-1", "eu-west-1"
ACCOUNT = "123456789012"  # moto's


def _sites(admin: Any, url: str) -> None:
    make_vpc(admin, E, "10.10.0.0/16", endpoint_url=url, tables=1)
    make_vpc(admin, W, "10.20.0.0/16", endpoint_url=url, tables=1)


@pytest.fixture
def cloud(iam_server: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[EnforcedCloud]:
    """Two site VPCs made by the administrator; the CLI runs with the controller's keys only."""
    made = enforce(iam_server, controller_policy(), lambda admin: _sites(admin, iam_server))
    monkeypatch.setenv("LINKER_ENDPOINT_URL", iam_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", made.keys[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", made.keys[1])
    yield made


def gone(cloud: EnforcedCloud, link: str = "default") -> bool:
    inv = inventory(cloud.admin, link, [E, W], cloud.url)
    return not inv["roles"] and not inv["profiles"] and not inv["buckets"] and all(
        not any(inv[r].values()) for r in (E, W))


def test_plan_up_status_down_with_exactly_the_printed_policy(cloud: EnforcedCloud,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", E, W, "--json")
    assert code == 0, out + err
    code, out, err = run(capsys, "up", E, W, "--yes", "--no-wait", "--json")
    assert code == 0, out + err
    assert {g["site"] for g in json.loads(out)["gateways"]} == {E, W}
    code, out, err = run(capsys, "plan", E, W, "--json")
    assert code == 0 and json.loads(out)["changes"] == [], out + err
    code, out, err = run(capsys, "status", "--json")  # no gateway has reported yet: degraded, not refused
    assert code == ExitCode.DEGRADED and len(json.loads(out)["gateways"]) == 2, out + err
    code, out, err = run(capsys, "down", "--yes", "--json")
    assert code == 0, out + err
    assert gone(cloud)


def _options(cloud: EnforcedCloud, k: int | None = None, die: bool = False, force: bool = False) -> Options:
    INJECTOR.arm(k, die)
    clients = Clients(Target(endpoint_url=cloud.url), hooks=(("before-call.*.*", INJECTOR),),
                      session=cloud.controller)
    return Options(force_unlock=force, max_workers=1, poll=0.0, timeout=10.0, clients=clients)


@pytest.mark.parametrize("k, die", [(3, False), (12, True), (20, False)], ids=["error-3", "death-12", "error-20"])
def test_a_failed_run_recovers_with_the_printed_policy(cloud: EnforcedCloud, k: int, die: bool) -> None:
    spec, yes = LinkSpec("faulty", (E, W)), (lambda _: True)
    target = Target(endpoint_url=cloud.url)
    with pytest.raises(Died if die else CloudError, match="" if die else "injected"):
        up_link(target, spec, yes, options=_options(cloud, k, die))
    up_link(target, spec, yes, options=_options(cloud, force=die))
    inv = inventory(cloud.admin, "faulty", [E, W], cloud.url)
    assert all(inv[r]["instances"] == 1 and inv[r]["eips"] == 1 for r in (E, W))
    with pytest.raises(Died if die else CloudError):
        down_link(target, "faulty", yes, regions=(E, W), options=_options(cloud, k // 2, die))
    down_link(target, "faulty", yes, regions=(E, W), options=_options(cloud, force=die))
    assert gone(cloud, "faulty")


def denied(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        return code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
    return False


def test_what_the_policy_does_not_grant_is_denied(cloud: EnforcedCloud, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "up", E, W, "--yes", "--no-wait", "--json")
    assert code == 0, out + err
    iam, role = cloud.controller.client("iam", endpoint_url=cloud.url), naming.resource_name("default", E)
    admin_policy = "arn:aws:iam::aws:policy/AdministratorAccess"
    assert denied(iam.attach_role_policy, RoleName=role, PolicyArn=admin_policy)
    # not an escalation path: no role without the boundary, the boundary stays, and its text cannot change
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                                "Principal": {"Service": "ec2.amazonaws.com"}}]})
    assert denied(iam.create_role, RoleName="linker-mint", Path=naming.IAM_PATH, AssumeRolePolicyDocument=trust)
    other_boundary = cloud.admin.client("iam", endpoint_url=cloud.url).create_policy(
        PolicyName="wide", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))["Policy"]["Arn"]
    assert denied(iam.create_role, RoleName="linker-mint", Path=naming.IAM_PATH, AssumeRolePolicyDocument=trust,
                  PermissionsBoundary=other_boundary)
    assert denied(iam.delete_role_permissions_boundary, RoleName=role)
    assert denied(iam.put_role_permissions_boundary, RoleName=role, PermissionsBoundary=other_boundary)
    assert denied(iam.create_policy_version, PolicyArn=boundary_arn("aws", ACCOUNT), SetAsDefault=True,
                  PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                      {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    assert denied(iam.create_policy, PolicyName="mine", PolicyDocument="{}")
    assert denied(iam.detach_role_policy, RoleName=role, PolicyArn=admin_policy)
    # EC2: only what carries linker:link
    admin_ec2 = cloud.admin.client("ec2", region_name=E, endpoint_url=cloud.url)
    image = admin_ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    other = admin_ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")
    other_id = other["Instances"][0]["InstanceId"]
    ec2 = cloud.controller.client("ec2", region_name=E, endpoint_url=cloud.url)
    assert denied(ec2.terminate_instances, InstanceIds=[other_id])
    assert denied(ec2.modify_instance_attribute, InstanceId=other_id, SourceDestCheck={"Value": False})
    assert denied(ec2.create_tags, Resources=[other_id], Tags=[{"Key": naming.TAG_LINK, "Value": "default"}])
    assert denied(ec2.run_instances, ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro")
    assert denied(ec2.allocate_address, Domain="vpc")
    table = admin_ec2.describe_route_tables()["RouteTables"][0]["RouteTableId"]
    assert denied(ec2.create_tags, Resources=[table], Tags=[{"Key": "Name", "Value": "mine"}])
    # PassRole: only linker's roles, only to EC2
    admin_iam = cloud.admin.client("iam", endpoint_url=cloud.url)
    admin_iam.create_role(RoleName="admin-role", AssumeRolePolicyDocument=trust)
    admin_iam.create_instance_profile(InstanceProfileName="admin-profile")
    admin_iam.add_role_to_instance_profile(InstanceProfileName="admin-profile", RoleName="admin-role")
    tagged = [{"ResourceType": kind, "Tags": [{"Key": naming.TAG_LINK, "Value": "default"}]}
              for kind in ("instance", "volume", "network-interface")]
    assert denied(ec2.run_instances, ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                  IamInstanceProfile={"Name": "admin-profile"}, TagSpecifications=tagged)
    ssm = cloud.controller.client("ssm", region_name=E, endpoint_url=cloud.url)
    cloud.admin.client("ssm", region_name=E, endpoint_url=cloud.url).put_parameter(
        Name="/prod/db/password", Value="secret", Type="SecureString")
    assert denied(ssm.get_parameter, Name="/prod/db/password", WithDecryption=True)
    assert denied(iam.create_user, UserName="mallory")
    assert denied(iam.put_role_policy, RoleName="someone-elses", PolicyName="x",
                  PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))


def test_without_the_boundary_up_stops_with_the_command_that_creates_it(
        iam_server: str, aws_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_boundary(admin: Any) -> None:
        _sites(admin, iam_server)
        admin.client("iam", endpoint_url=iam_server).delete_policy(PolicyArn=boundary_arn("aws", ACCOUNT))
    made = enforce(iam_server, controller_policy(), no_boundary)
    monkeypatch.setenv("LINKER_ENDPOINT_URL", iam_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", made.keys[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", made.keys[1])
    code, out, err = run(capsys, "up", E, W, "--yes", "--no-wait", "--json")
    doc = json.loads(out)
    assert code == ExitCode.CLOUD, out + err
    assert "linker iam-policy --boundary" in doc["fix"] and "aws iam create-policy" in doc["fix"]
    assert not inventory(made.admin, "default", [E, W], iam_server)["roles"]


def test_up_puts_an_older_role_within_the_boundary_and_drops_its_managed_policy(
        cloud: EnforcedCloud, capsys: pytest.CaptureFixture[str]) -> None:
    iam = cloud.admin.client("iam", endpoint_url=cloud.url)
    code, out, err = run(capsys, "up", E, W, "--yes", "--no-wait", "--json")
    assert code == 0, out + err
    role = naming.resource_name("default", E)
    legacy = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
    # what an older linker left: no boundary, the managed policy attached (an administrator plays the old run)
    iam.delete_role_permissions_boundary(RoleName=role)
    iam.attach_role_policy(RoleName=role, PolicyArn=legacy)
    code, out, err = run(capsys, "up", E, W, "--yes", "--no-wait", "--json")
    assert code == 0, out + err
    got = iam.get_role(RoleName=role)["Role"]
    assert got["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary_arn("aws", ACCOUNT)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    iam.delete_role_permissions_boundary(RoleName=role)  # and down handles such a role as well
    code, out, err = run(capsys, "down", "--yes", "--json")
    assert code == 0, out + err
    assert gone(cloud)


def test_resources_not_yet_visible_after_their_create_are_waited_for_with_the_printed_policy(
        cloud: EnforcedCloud) -> None:
    hook, target = NotYetVisible(2), Target(endpoint_url=cloud.url)
    clients = Clients(target, hooks=(("before-call.*.*", hook),), session=cloud.controller)
    up_link(target, LinkSpec("settle", (E, W)), lambda _: True,
            options=Options(poll=0.0, timeout=30.0, max_workers=1, clients=clients))
    assert set(hook.seen) == set(AFTER_CREATE)
    down_link(target, "settle", lambda _: True, regions=(E, W), options=_options(cloud))
    assert gone(cloud, "settle")
