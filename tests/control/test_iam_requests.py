"""The checks the IAM-enforcing test server makes for a call (tests/control/iam_requests.py) are those AWS
documents: the right ARNs, the tags of what exists and of the request, PassRole on a launch."""

from __future__ import annotations

from tests.control.iam_requests import Profile, Role, checks

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/linker/linker-a-eu-west-1"
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/linker/linker-gateway-boundary"


class World:
    def ec2_tags(self, region: str, resource_id: str) -> dict[str, str]:
        return {"linker:link": "a"} if resource_id in ("sg-1", "i-1", "eipalloc-1") else {}

    def allocation_of_association(self, region: str, association_id: str) -> str | None:
        return "eipalloc-1" if association_id == "eipassoc-1" else None

    def role(self, name: str) -> Role | None:
        return Role(ROLE, {"linker:link": "a"}, BOUNDARY) if name == "linker-a-eu-west-1" else None

    def profile(self, name: str) -> Profile | None:
        arn = f"arn:aws:iam::{ACCOUNT}:instance-profile/linker/{name}"
        return Profile(arn, (ROLE,)) if name == "linker-a-eu-west-1" else None


def run(service: str, action: str, params: dict[str, object], region: str = "eu-west-1") -> list:  # type: ignore[type-arg]
    return checks(World(), service, action, region, ACCOUNT, params)


def test_a_launch_checks_what_it_creates_uses_and_passes() -> None:
    params = {"ImageId": "ami-1", "SubnetId": "subnet-1", "SecurityGroupId.1": "sg-1",
              "IamInstanceProfile.Name": "linker-a-eu-west-1",
              "TagSpecification.1.ResourceType": "instance", "TagSpecification.1.Tag.1.Key": "linker:link",
              "TagSpecification.1.Tag.1.Value": "a"}
    got = {(c.action, c.resource): dict(c.context) for c in run("ec2", "RunInstances", params)}
    arn = f"arn:aws:ec2:eu-west-1:{ACCOUNT}"
    assert got[("ec2:RunInstances", f"{arn}:instance/*")] == {"aws:requesttag/linker:link": ("a",),
                                                              "aws:tagkeys": ("linker:link",)}
    assert got[("ec2:CreateTags", f"{arn}:instance/*")]["ec2:createaction"] == ("RunInstances",)
    assert got[("ec2:RunInstances", f"{arn}:volume/*")] == {}  # not tagged in this request
    assert got[("ec2:RunInstances", f"{arn}:security-group/sg-1")] == {"aws:resourcetag/linker:link": ("a",)}
    assert ("ec2:RunInstances", f"{arn}:subnet/subnet-1") in got
    assert ("ec2:RunInstances", "arn:aws:ec2:eu-west-1::image/ami-1") in got
    assert got[("iam:PassRole", ROLE)] == {"iam:passedtoservice": ("ec2.amazonaws.com",)}


def test_changes_of_existing_resources_carry_their_tags() -> None:
    [release] = run("ec2", "DisassociateAddress", {"AssociationId": "eipassoc-1"})
    assert release.resource.endswith(":elastic-ip/eipalloc-1") and release.context["aws:resourcetag/linker:link"]
    [tag] = run("ec2", "CreateTags", {"ResourceId.1": "rtb-1", "Tag.1.Key": "linker:route:a:10.0.0.0/16",
                                      "Tag.1.Value": "x"})
    assert tag.resource.endswith(":route-table/rtb-1") and tag.context["aws:tagkeys"] == (
        "linker:route:a:10.0.0.0/16",)
    assert "aws:resourcetag/linker:link" not in tag.context


def test_role_changes_carry_the_boundary_and_the_policy_arn() -> None:
    [create] = run("iam", "CreateRole", {"RoleName": "linker-b", "Path": "/linker/", "PermissionsBoundary": BOUNDARY})
    assert create.resource == f"arn:aws:iam::{ACCOUNT}:role/linker/linker-b"
    assert create.context["iam:permissionsboundary"] == (BOUNDARY,)
    [detach] = run("iam", "DetachRolePolicy", {"RoleName": "linker-a-eu-west-1", "PolicyArn": "arn:x"})
    assert detach.resource == ROLE and detach.context["iam:permissionsboundary"] == (BOUNDARY,)
    assert detach.context["iam:policyarn"] == ("arn:x",)
    [read] = run("iam", "GetRole", {"RoleName": "linker-new"})
    assert read.resource == f"arn:aws:iam::{ACCOUNT}:role/linker-new"  # not made yet: no path
    add = run("iam", "AddRoleToInstanceProfile", {"InstanceProfileName": "linker-a-eu-west-1",
                                                  "RoleName": "linker-a-eu-west-1"})
    assert [c.action for c in add] == ["iam:AddRoleToInstanceProfile", "iam:PassRole"]


def test_parameters_public_ones_without_an_account_and_partitions() -> None:
    [own] = run("ssm", "GetParametersByPath", {"Path": "/linker/a"})
    assert own.resource == f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/linker/a"
    [public] = run("ssm", "GetParameter", {"Name": "/aws/service/x"})
    assert public.resource == "arn:aws:ssm:eu-west-1::parameter/aws/service/x"
    [china] = run("ssm", "GetParameter", {"Name": "/linker/a/lock"}, region="cn-north-1")
    assert china.resource.startswith("arn:aws-cn:ssm:cn-north-1:")
