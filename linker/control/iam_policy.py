"""The least-privilege IAM policy the controller (``up``, ``plan``, ``status``, ``down``) needs, and the permissions
boundary every role linker creates carries. Pure.

Not an escalation path: the controller creates and changes roles only under ``/linker/`` and only with the
boundary ``policy/linker/linker-gateway-boundary`` set (``iam:PermissionsBoundary``), may not remove or replace
it, and may not write any managed policy (no CreatePolicy/CreatePolicyVersion): whoever could write the boundary
could widen it, so an administrator creates it once (``linker iam-policy --boundary`` prints it). A role it passes
to EC2 (PassRole) is therefore never stronger than a gateway. EC2 creations must carry the ``linker:link`` tag
(``aws:RequestTag``) and mutations touch only resources that carry it (``aws:ResourceTag``); route changes are the
exception explained in PARLIAMENT_FINDINGS.

A test records every AWS action the controller calls across the control test suites and fails if one is missing
here; tests/control/test_iam_enforced.py runs the commands holding exactly this policy against a server that
enforces it as IAM does. Keep the lists in step with apply/, facts/readers.py, lock.py and operations.py.
"""

from __future__ import annotations

import json
from typing import Any

from linker import naming
from linker.control.render import METRIC_NAMESPACE

EC2_READ = ("DescribeVpcs", "DescribeSubnets", "DescribeRouteTables", "DescribeAddresses", "DescribeSecurityGroups",
            "DescribeInstances", "DescribeRegions", "DescribeImages", "DescribeInstanceTypeOfferings")
EC2_READ_PREFIX_LISTS = ("GetManagedPrefixListEntries",)  # the CIDRs of a prefix list a route table sends elsewhere
EC2_CREATE = ("RunInstances", "AllocateAddress", "CreateSecurityGroup")
EC2_ON_LINK_RESOURCES = ("TerminateInstances", "ModifyInstanceAttribute", "ModifyInstanceMetadataOptions",
                         "AssociateAddress", "DisassociateAddress", "ReleaseAddress", "DeleteSecurityGroup",
                         "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress",
                         "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress", "CreateTags", "DeleteTags")
EC2_ROUTES = ("CreateRoute", "ReplaceRoute", "DeleteRoute")
SSM = ("GetParameter", "GetParametersByPath", "PutParameter", "DeleteParameter")
S3 = ("CreateBucket", "DeleteBucket", "ListBucket", "GetBucketTagging", "PutBucketTagging",
      "PutBucketPublicAccessBlock", "PutObject", "DeleteObject")
IAM_READ = ("GetRole", "GetRolePolicy", "ListAttachedRolePolicies", "GetInstanceProfile")
# role changes allowed only while the role's boundary (or the one being set) is linker's
IAM_BOUNDED = ("CreateRole", "PutRolePolicy", "DeleteRolePolicy", "PutRolePermissionsBoundary")
IAM_WRITE = ("DeleteRole", "TagRole", "CreateInstanceProfile", "DeleteInstanceProfile", "TagInstanceProfile",
             "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile")

BOUNDARY_NAME = "linker-gateway-boundary"
LEGACY_MANAGED_POLICY = "AmazonSSMManagedInstanceCore"  # what linker attached to gateway roles before: detached
TAG_PRESENT = "false"  # the Null operator's "the key is present"
ROUTE_TAG_KEYS = naming.route_tag("*", "*").replace("*:*", "*")  # linker:route:*

# What parliament (the IAM checker users' security teams run) still reports on controller_policy(), and why. CI
# runs it (tests/control/test_parliament.py) and fails on any finding not named here; the README says the same.
PARLIAMENT_FINDINGS = {
    "PERMISSIONS_MANAGEMENT_ACTIONS": "linker makes each gateway's role and instance profile, so it holds IAM "
                                      "write actions, only on role/linker/* and instance-profile/linker/*, and a "
                                      "role only within linker's permissions boundary, which it can neither remove "
                                      "nor write; s3:PutBucketPublicAccessBlock only blocks public access to "
                                      "linker's own buckets",
    "PRIVILEGE_ESCALATION": "PassRole with RunInstances is how a gateway gets its role; PassRole is limited to "
                            "role/linker/* and to ec2.amazonaws.com, and every role linker can make carries the "
                            "permissions boundary: a holder cannot mint a role stronger than a gateway",
    "RESOURCE_MISMATCH": "RunInstances and CreateSecurityGroup are split by resource type, as AWS documents for "
                         "tagging on create: what they create (instance, volume, network interface, group) needs "
                         "the linker:link request tag, what they use (the user's subnet and VPC, a public image, "
                         "linker's tagged group) does not; parliament wants every resource type of an action in "
                         "each statement",
}


def arn(partition: str, service: str, rest: str, region: str = "*", account: str = "*") -> str:
    return f"arn:{partition}:{service}:{region}:{account}:{rest}"


def boundary_arn(partition: str = "aws", account: str = "*") -> str:
    """The ARN of linker's permissions boundary (``*``: in any account, as the controller's policy names it)."""
    return arn(partition, "iam", f"policy{naming.IAM_PATH}{BOUNDARY_NAME}", region="", account=account)


def _ec2(partition: str, *kinds: str) -> list[str]:
    return [arn(partition, "ec2", f"{kind}/*") for kind in kinds]


def _statement(sid: str, actions: tuple[str, ...] | list[str], resources: str | list[str], service: str = "",
               condition: dict[str, Any] | None = None, effect: str = "Allow") -> dict[str, Any]:
    out: dict[str, Any] = {"Sid": sid, "Effect": effect,
                           "Action": [f"{service}:{a}" if service else a for a in actions], "Resource": resources}
    if condition:
        out["Condition"] = condition
    return out


def ec2_statements(p: str) -> list[dict[str, Any]]:
    linker_tagged = {"Null": {f"aws:ResourceTag/{naming.TAG_LINK}": TAG_PRESENT}}
    return [
        _statement("Ec2Read", EC2_READ, "*", "ec2"),
        _statement("Ec2ReadPrefixLists", EC2_READ_PREFIX_LISTS, _ec2(p, "prefix-list"), "ec2"),
        # a new instance, its volume and network interface, address or group: only with the linker:link tag
        _statement("Ec2CreateTagged", EC2_CREATE, _ec2(p, "instance", "volume", "network-interface", "elastic-ip",
                                                       "security-group"), "ec2",
                   {"Null": {f"aws:RequestTag/{naming.TAG_LINK}": TAG_PRESENT}}),
        # what a launch or a new group uses that is the user's or AWS's (subnets, VPCs, public images and their
        # snapshots, which belong to no account in their ARN)
        _statement("Ec2LaunchInto", ("RunInstances", "CreateSecurityGroup"),
                   [*_ec2(p, "subnet", "vpc"), arn(p, "ec2", "image/*", account=""),
                    arn(p, "ec2", "snapshot/*", account="")], "ec2"),
        _statement("Ec2TagOnCreate", ("CreateTags",), _ec2(p, "instance", "volume", "network-interface",
                                                           "elastic-ip", "security-group"), "ec2",
                   {"StringEquals": {"ec2:CreateAction": list(EC2_CREATE)}}),
        _statement("Ec2LinkResources", (*EC2_ON_LINK_RESOURCES, "RunInstances"),
                   _ec2(p, "instance", "elastic-ip", "security-group"), "ec2", linker_tagged),
        # routes are made in the user's route tables, which carry no linker tag: by type only (plan refuses to
        # touch a route linker did not record as its own)
        _statement("Ec2Routes", EC2_ROUTES, _ec2(p, "route-table"), "ec2"),
        # the tags recording linker's routes: keys linker:route:* only
        _statement("Ec2RouteRecords", ("CreateTags", "DeleteTags"), _ec2(p, "route-table"), "ec2",
                   {"ForAllValues:StringLike": {"aws:TagKeys": [ROUTE_TAG_KEYS]},
                    "Null": {"aws:TagKeys": TAG_PRESENT}}),
    ]


def iam_statements(p: str) -> list[dict[str, Any]]:
    roles, profiles = arn(p, "iam", f"role{naming.IAM_PATH}*", region=""), \
        arn(p, "iam", f"instance-profile{naming.IAM_PATH}*", region="")
    ours = {"ArnLike": {"iam:PermissionsBoundary": boundary_arn(p)}}
    return [
        # a role or profile that does not exist yet has no path: IAM evaluates a read of it against role/NAME,
        # and answers AccessDenied (not NoSuchEntity) unless that ARN is allowed too
        _statement("GatewayRolesRead", IAM_READ, [roles, profiles,
                                                   arn(p, "iam", f"role/{naming.RESOURCE_PREFIX}*", region=""),
                                                   arn(p, "iam", f"instance-profile/{naming.RESOURCE_PREFIX}*",
                                                       region="")], "iam"),
        _statement("GatewayRolesBounded", IAM_BOUNDED, [roles], "iam", ours),
        _statement("DetachLegacyManagedPolicy", ("DetachRolePolicy",), [roles], "iam",
                   {**ours, "ArnEquals": {"iam:PolicyARN": arn(p, "iam", f"policy/{LEGACY_MANAGED_POLICY}",
                                                               region="", account="aws")}}),
        _statement("GatewayRoles", IAM_WRITE, [roles, profiles], "iam"),
        _statement("ReadBoundary", ("GetPolicy",), [boundary_arn(p)], "iam"),
        _statement("PassGatewayRole", ("PassRole",), [roles], "iam",
                   {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        # whatever else the holder may be granted: never off or another boundary, never a new boundary text
        _statement("KeepTheBoundary", ("DeleteRolePermissionsBoundary",), "*", "iam", effect="Deny"),
        _statement("OnlyLinkersBoundary", ("PutRolePermissionsBoundary",), "*", "iam",
                   {"ArnNotLike": {"iam:PermissionsBoundary": boundary_arn(p)}}, effect="Deny"),
        _statement("NeverWriteTheBoundary", ("CreatePolicyVersion", "SetDefaultPolicyVersion", "DeletePolicy",
                                             "DeletePolicyVersion"), [boundary_arn(p)], "iam", effect="Deny"),
    ]


def controller_policy(partition: str = "aws") -> dict[str, Any]:
    """The controller's policy document for the accounts of ``partition``."""
    p = partition
    return {
        "Version": "2012-10-17",
        "Statement": [
            *ec2_statements(p),
            _statement("LinkParameters", SSM, [arn(p, "ssm", "parameter/linker/*")], "ssm"),
            # public parameters' ARNs carry no account ("region::parameter/aws/..."); "*" matches the empty field
            _statement("PublicAmiParameters", ("GetParameter",),
                       [arn(p, "ssm", "parameter/aws/service/ami-amazon-linux-latest/*")], "ssm"),
            _statement("GatewayWheelBuckets", S3, [f"arn:{p}:s3:::linker-*", f"arn:{p}:s3:::linker-*/*"], "s3"),
            _statement("WhoAmI", ("GetCallerIdentity",), "*", "sts"),
            *iam_statements(p),
        ],
    }


def boundary_policy(partition: str = "aws") -> dict[str, Any]:
    """The permissions boundary of every role linker creates: at most what any gateway may need (its link's
    parameters, its bucket's objects, Session Manager, metrics in linker's namespace, the EC2 reads an agent
    may make, moving routes on a failover). A role's own inline policy narrows this to its link and site."""
    p = partition
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement("LinkParameters", ("GetParameter", "GetParameters", "GetParametersByPath", "PutParameter"),
                       [arn(p, "ssm", "parameter/linker/*")], "ssm"),
            _statement("GatewayWheel", ("GetObject",), [f"arn:{p}:s3:::linker-*/*"], "s3"),
            _statement("SessionManagerRegistration", ("UpdateInstanceInformation",), _ec2(p, "instance"), "ssm"),
            _statement("SessionManagerChannels", ("CreateControlChannel", "CreateDataChannel",
                                                  "OpenControlChannel", "OpenDataChannel"), "*", "ssmmessages"),
            _statement("HealthMetrics", ("PutMetricData",), "*", "cloudwatch",
                       {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}),
            _statement("AgentReads", ("DescribeInstances", "DescribeTags", "DescribeRouteTables"), "*", "ec2"),
            # a site's two gateways move its routes on a failover (docs/HA.md); each role's own policy narrows this
            # to the tables tagged for its link and site
            _statement("FailoverRoutes", ("ReplaceRoute",), _ec2(p, "route-table"), "ec2"),
        ],
    }


# API operations whose IAM action has another name
ACTION_OF_OPERATION = {"s3:HeadBucket": "s3:ListBucket", "s3:ListObjectsV2": "s3:ListBucket",
                       "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock"}


def allowed_actions() -> set[str]:
    """Every ``service:Action`` the policy allows somewhere (no wildcards are used)."""
    return {a for s in controller_policy()["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}


def action_of(operation: str) -> str:
    """The IAM action that authorizes ``service:Operation`` (an API call as botocore names it)."""
    return ACTION_OF_OPERATION.get(operation, operation)


def policy_json(partition: str = "aws") -> str:
    return json.dumps(controller_policy(partition), indent=2)


def boundary_json(partition: str = "aws") -> str:
    return json.dumps(boundary_policy(partition), indent=2)


def create_boundary_command(partition: str = "aws") -> str:
    """What an administrator runs, once per account, before linker can make roles."""
    flag = f" --partition {partition}" if partition != "aws" else ""
    return (f"linker iam-policy --boundary{flag} > linker-boundary.json && aws iam create-policy "
            f"--path {naming.IAM_PATH} --policy-name {BOUNDARY_NAME} "
            "--policy-document file://linker-boundary.json")
