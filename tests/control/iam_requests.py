"""What real IAM authorizes for one API call: the resource ARNs and condition keys of each check (for the tests'
IAM-enforcing moto server, tests/control/iam_server.py).

moto's own access control evaluates most services against the resource ``*`` and ignores conditions, so a
least-privilege policy is wrongly denied there (or a wide one wrongly allowed). This module gives each call linker
makes what the AWS Service Authorization Reference lists for it: the resource ARN of every resource the call
touches (an instance, its volume and network interface being created, the subnet and security group it uses, the
image...), with ``aws:ResourceTag/*`` of resources that exist, ``aws:RequestTag/*`` and ``aws:TagKeys`` of tags
in the request, ``ec2:CreateAction`` on the implicit CreateTags of a tag-on-create, ``iam:PassRole`` with
``iam:PassedToService`` when an instance is launched with a profile, ``iam:PermissionsBoundary`` and
``iam:PolicyARN`` on role changes. An action not listed is checked against ``*`` (as AWS does for actions without
resource-level permissions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from linker.control.partition import partition_of  # the regions' partitions are AWS's rule
from tests.control.iam_eval import Request

Params = Mapping[str, str]  # the call's parameters, flattened as the query protocol sends them


class World(Protocol):
    """What exists, as the server's backends know it."""

    def ec2_tags(self, region: str, resource_id: str) -> dict[str, str]: ...

    def allocation_of_association(self, region: str, association_id: str) -> str | None: ...

    def role(self, name: str) -> Role | None: ...

    def profile(self, name: str) -> Profile | None: ...


@dataclass(frozen=True)
class Role:
    arn: str
    tags: dict[str, str]
    boundary: str | None


@dataclass(frozen=True)
class Profile:
    arn: str
    role_arns: tuple[str, ...]


def indexed(params: Params, prefix: str) -> list[str]:
    """The values of ``PREFIX.1``, ``PREFIX.2``... in order."""
    found = [(int(m.group(1)), v) for k, v in params.items() if (m := re.fullmatch(re.escape(prefix) + r"\.(\d+)", k))]
    return [v for _, v in sorted(found)]


def tag_pairs(params: Params, prefix: str) -> dict[str, str]:
    """Tags sent as ``PREFIX.N.Key`` / ``PREFIX.N.Value``."""
    keys = {m.group(1): v for k, v in params.items() if (m := re.fullmatch(re.escape(prefix) + r"\.(\d+)\.Key", k))}
    return {key: params.get(f"{prefix}.{n}.Value", "") for n, key in keys.items()}


def tag_specifications(params: Params) -> dict[str, dict[str, str]]:
    """EC2's TagSpecification.N: {resource type: tags}."""
    out: dict[str, dict[str, str]] = {}
    for k, kind in params.items():
        m = re.fullmatch(r"TagSpecification\.(\d+)\.ResourceType", k)
        if m:
            out.setdefault(kind, {}).update(tag_pairs(params, f"TagSpecification.{m.group(1)}.Tag"))
    return out


def request_tag_keys(tags: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    keys: dict[str, tuple[str, ...]] = {f"aws:requesttag/{k}".lower(): (v,) for k, v in tags.items()}
    if tags:
        keys["aws:tagkeys"] = tuple(tags)
    return keys


def resource_tag_keys(tags: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    return {f"aws:resourcetag/{k}".lower(): (v,) for k, v in tags.items()}


EC2_TYPES = {"i": "instance", "sg": "security-group", "eipalloc": "elastic-ip", "rtb": "route-table",
             "vol": "volume", "eni": "network-interface", "vpc": "vpc", "subnet": "subnet", "ami": "image"}


class Ec2:
    """The checks of an EC2 call."""

    def __init__(self, world: World, region: str, account: str) -> None:
        self.world, self.region, self.account = world, region, account
        self.partition = partition_of(region)

    def arn(self, kind: str, ident: str) -> str:
        account = "" if kind == "image" else self.account  # images are owned by no account in their ARN
        return f"arn:{self.partition}:ec2:{self.region}:{account}:{kind}/{ident}"

    def existing(self, action: str, ident: str, extra: Mapping[str, tuple[str, ...]] | None = None) -> Request:
        kind = EC2_TYPES.get(ident.split("-", 1)[0], "unknown")
        context = {**resource_tag_keys(self.world.ec2_tags(self.region, ident)), **(extra or {})}
        return Request(f"ec2:{action}", self.arn(kind, ident), context)

    def created(self, action: str, kind: str, specs: Mapping[str, Mapping[str, str]]) -> list[Request]:
        """The new resource, and the implicit CreateTags when it is tagged on create."""
        tags = specs.get(kind, {})
        out = [Request(f"ec2:{action}", self.arn(kind, "*"), request_tag_keys(tags))]
        if tags:
            out.append(Request("ec2:CreateTags", self.arn(kind, "*"),
                               {**request_tag_keys(tags), "ec2:createaction": (action,)}))
        return out

    def checks(self, action: str, p: Params) -> list[Request]:
        specs = tag_specifications(p)
        if action == "RunInstances":
            out = [r for kind in ("instance", "volume", "network-interface") for r in self.created(action, kind, specs)]
            out += [self.existing(action, i) for i in [p.get("SubnetId", ""), *indexed(p, "SecurityGroupId")] if i]
            out.append(Request(f"ec2:{action}", self.arn("image", p.get("ImageId", "")), {}))
            profile = p.get("IamInstanceProfile.Name") or p.get("IamInstanceProfile.Arn", "").rsplit("/", 1)[-1]
            found = self.world.profile(profile) if profile else None
            out += [Request("iam:PassRole", role, {"iam:passedtoservice": ("ec2.amazonaws.com",)})
                    for role in (found.role_arns if found else ())]
            return out
        if action == "AllocateAddress":
            return self.created(action, "elastic-ip", specs)
        if action == "CreateSecurityGroup":
            return [*self.created(action, "security-group", specs), self.existing(action, p.get("VpcId", ""))]
        if action == "AssociateAddress":
            return [self.existing(action, p[k]) for k in ("AllocationId", "InstanceId") if p.get(k)]
        if action == "DisassociateAddress":
            alloc = self.world.allocation_of_association(self.region, p.get("AssociationId", ""))
            return [self.existing(action, alloc or "eipalloc-unknown")]
        if action in ("ReleaseAddress",):
            return [self.existing(action, p.get("AllocationId", ""))]
        if action in ("AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupIngress",
                      "RevokeSecurityGroupEgress", "DeleteSecurityGroup"):
            return [self.existing(action, p.get("GroupId", ""))]
        if action in ("TerminateInstances", "StopInstances", "StartInstances"):
            return [self.existing(action, i) for i in indexed(p, "InstanceId")]
        if action in ("ModifyInstanceAttribute", "ModifyInstanceMetadataOptions"):
            return [self.existing(action, p.get("InstanceId", ""))]
        if action in ("CreateRoute", "ReplaceRoute", "DeleteRoute"):
            return [self.existing(action, p.get("RouteTableId", ""))]
        if action in ("CreateTags", "DeleteTags"):
            tags = tag_pairs(p, "Tag")
            return [self.existing(action, i, request_tag_keys(tags)) for i in indexed(p, "ResourceId")]
        return [Request(f"ec2:{action}", "*", {})]


ROLE_ACTIONS = {"GetRole", "CreateRole", "DeleteRole", "TagRole", "UntagRole", "GetRolePolicy", "PutRolePolicy",
                "DeleteRolePolicy", "ListRolePolicies", "ListAttachedRolePolicies", "AttachRolePolicy",
                "DetachRolePolicy", "PutRolePermissionsBoundary", "DeleteRolePermissionsBoundary",
                "UpdateAssumeRolePolicy", "UpdateRole"}
# the actions whose iam:PermissionsBoundary is the role's current boundary (AWS: "...set as the boundary on the role")
BOUNDED_BY_CURRENT = {"PutRolePolicy", "DeleteRolePolicy", "AttachRolePolicy", "DetachRolePolicy",
                      "DeleteRolePermissionsBoundary"}
PROFILE_ACTIONS = {"GetInstanceProfile", "CreateInstanceProfile", "DeleteInstanceProfile", "TagInstanceProfile",
                   "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile"}
POLICY_ACTIONS = {"CreatePolicy", "GetPolicy", "GetPolicyVersion", "CreatePolicyVersion", "DeletePolicy",
                  "DeletePolicyVersion", "SetDefaultPolicyVersion", "ListPolicyVersions"}


def iam_checks(world: World, account: str, action: str, p: Params) -> list[Request]:
    iam = f"arn:aws:iam::{account}"
    if action in ROLE_ACTIONS:
        name = p.get("RoleName", "")
        role = world.role(name)
        path = p.get("Path", "/") if action == "CreateRole" else "/"
        context: dict[str, tuple[str, ...]] = {}
        if role is not None:
            context.update(resource_tag_keys(role.tags))
        context.update(request_tag_keys(tag_pairs(p, "Tags.member")))
        boundary = p.get("PermissionsBoundary") if action in ("CreateRole", "PutRolePermissionsBoundary") else (
            role.boundary if role is not None and action in BOUNDED_BY_CURRENT else None)
        if boundary:
            context["iam:permissionsboundary"] = (boundary,)
        if action in ("AttachRolePolicy", "DetachRolePolicy"):
            context["iam:policyarn"] = (p.get("PolicyArn", ""),)
        return [Request(f"iam:{action}", role.arn if role else f"{iam}:role{path}{name}", context)]
    if action in PROFILE_ACTIONS:
        name = p.get("InstanceProfileName", "")
        found = world.profile(name)
        path = p.get("Path", "/") if action == "CreateInstanceProfile" else "/"
        context = request_tag_keys(tag_pairs(p, "Tags.member"))
        out = [Request(f"iam:{action}", found.arn if found else f"{iam}:instance-profile{path}{name}", context)]
        role = world.role(p.get("RoleName", "")) if action == "AddRoleToInstanceProfile" else None
        if role is not None:  # AWS: "the caller must be granted the PassRole permission on the role" (to EC2)
            out.append(Request("iam:PassRole", role.arn, {"iam:passedtoservice": ("ec2.amazonaws.com",)}))
        return out
    if action in POLICY_ACTIONS:
        arn = p.get("PolicyArn") or f"{iam}:policy{p.get('Path', '/')}{p.get('PolicyName', '')}"
        return [Request(f"iam:{action}", arn, {})]
    return [Request(f"iam:{action}", "*", {})]


def ssm_checks(region: str, account: str, action: str, p: Mapping[str, object]) -> list[Request]:
    names = [p[k] for k in ("Name", "Path") if isinstance(p.get(k), str)]
    names += [n for n in p.get("Names", []) or [] if isinstance(n, str)]  # type: ignore[union-attr]
    if not names:
        return [Request(f"ssm:{action}", "*", {})]

    def arn(name: str) -> str:
        owner = "" if name.startswith("/aws/") else account  # public parameters belong to no account
        return f"arn:{partition_of(region)}:ssm:{region}:{owner}:parameter/{name.lstrip('/')}"
    return [Request(f"ssm:{action}", arn(str(n)), {}) for n in names]


# S3 operations (as moto names them) whose IAM action has another name
S3_ACTIONS = {"HeadBucket": "ListBucket", "ListObjects": "ListBucket", "ListObjectsV2": "ListBucket",
              "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
              "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
              "DeletePublicAccessBlock": "PutBucketPublicAccessBlock", "HeadObject": "GetObject",
              "DeleteObjects": "DeleteObject", "ListBuckets": "ListAllMyBuckets"}


def checks(world: World, service: str, action: str, region: str, account: str, params: Mapping[str, object],
           resource: str = "*") -> list[Request]:
    """Every authorization real IAM makes for ``service:action`` with ``params`` (S3: moto's own ``resource``)."""
    flat = {k: v for k, v in params.items() if isinstance(v, str)}
    if service == "ec2":
        return Ec2(world, region, account).checks(action, flat)
    if service == "iam":
        return iam_checks(world, account, action, flat)
    if service == "ssm":
        return ssm_checks(region, account, action, params)
    if service == "s3":
        action = S3_ACTIONS.get(action, action)
    return [Request(f"{service}:{action}", resource, {})]
