"""The least-privilege IAM policy the controller (``up``, ``plan``, ``status``, ``down``) needs.

A test records every AWS action the controller calls across the control test suites and fails if one is missing
here; keep the lists in step with apply.py, facts/readers.py, lock.py and operations.py.
"""

from __future__ import annotations

import json

from linker import naming

EC2_READ = ("DescribeVpcs", "DescribeSubnets", "DescribeRouteTables", "DescribeAddresses", "DescribeSecurityGroups",
            "DescribeInstances", "DescribeRegions", "DescribeImages", "DescribeInstanceTypeOfferings",
            "GetManagedPrefixListEntries")
EC2_WRITE = ("AllocateAddress", "AssociateAddress", "DisassociateAddress", "ReleaseAddress", "CreateSecurityGroup",
             "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress",
             "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupEgress", "DeleteSecurityGroup", "RunInstances",
             "TerminateInstances", "ModifyInstanceAttribute", "ModifyInstanceMetadataOptions", "CreateTags",
             "DeleteTags", "CreateRoute", "ReplaceRoute", "DeleteRoute")
SSM = ("GetParameter", "GetParametersByPath", "PutParameter", "DeleteParameter")
S3 = ("CreateBucket", "DeleteBucket", "ListBucket", "GetBucketTagging", "PutBucketTagging",
      "PutBucketPublicAccessBlock", "PutObject", "DeleteObject")
IAM = ("GetRole", "CreateRole", "DeleteRole", "TagRole", "GetRolePolicy", "PutRolePolicy", "DeleteRolePolicy",
       "ListAttachedRolePolicies", "DetachRolePolicy", "GetInstanceProfile",
       "CreateInstanceProfile", "DeleteInstanceProfile", "TagInstanceProfile", "AddRoleToInstanceProfile",
       "RemoveRoleFromInstanceProfile")

IAM_READ = ("GetRole", "GetRolePolicy", "ListAttachedRolePolicies", "GetInstanceProfile")

# What parliament (the IAM checker users' security teams run) still reports on controller_policy(), and why. CI
# runs it (tests/control/test_parliament.py) and fails on any finding not named here; the README says the same.
PARLIAMENT_FINDINGS = {
    "PERMISSIONS_MANAGEMENT_ACTIONS": "linker makes each gateway's role and instance profile, so it holds IAM "
                                      "write actions, only on role/linker/* and instance-profile/linker/*",
    "PRIVILEGE_ESCALATION": "PassRole with RunInstances is how a gateway gets its role; PassRole is limited to "
                            "role/linker/* and to ec2.amazonaws.com. Open: a permissions boundary on the roles "
                            "linker creates, so a holder cannot mint a stronger role under that path (issue 11)",
    "RESOURCE_STAR": "EC2 mutations on any resource. Open: scope them by aws:ResourceTag/linker:link and creations "
                     "by aws:RequestTag (issue 11); route changes are on the user's route tables, which carry no "
                     "linker tag",
}


def controller_policy() -> dict:
    """The policy document: EC2 on any resource (its resource-level support is uneven), SSM only under the link
    prefix and the public AMI parameters, IAM only on roles and profiles under linker's path, PassRole only to EC2."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Ec2Read", "Effect": "Allow", "Action": [f"ec2:{a}" for a in EC2_READ], "Resource": "*"},
            {"Sid": "Ec2Gateways", "Effect": "Allow", "Action": [f"ec2:{a}" for a in EC2_WRITE], "Resource": "*"},
            {"Sid": "LinkParameters", "Effect": "Allow", "Action": [f"ssm:{a}" for a in SSM],
             "Resource": ["arn:aws:ssm:*:*:parameter/linker/*"]},
            {"Sid": "PublicAmiParameters", "Effect": "Allow", "Action": ["ssm:GetParameter"],
             # public parameters' ARNs carry no account ("region::parameter/aws/..."); "*" matches the empty field
             "Resource": ["arn:aws:ssm:*:*:parameter/aws/service/ami-amazon-linux-latest/*"]},
            {"Sid": "GatewayWheelBuckets", "Effect": "Allow", "Action": [f"s3:{a}" for a in S3],
             "Resource": ["arn:aws:s3:::linker-*", "arn:aws:s3:::linker-*/*"]},
            {"Sid": "WhoAmI", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
            {"Sid": "GatewayRoles", "Effect": "Allow", "Action": [f"iam:{a}" for a in IAM],
             "Resource": [f"arn:aws:iam::*:role{naming.IAM_PATH}*",
                          f"arn:aws:iam::*:instance-profile{naming.IAM_PATH}*"]},
            # A role or profile that does not exist yet has no path: IAM evaluates a read of it against
            # role/NAME, and answers AccessDenied (not NoSuchEntity) unless that ARN is allowed too.
            {"Sid": "GatewayRolesNotYetMade", "Effect": "Allow", "Action": [f"iam:{a}" for a in IAM_READ],
             "Resource": [f"arn:aws:iam::*:role/{naming.RESOURCE_PREFIX}*",
                          f"arn:aws:iam::*:instance-profile/{naming.RESOURCE_PREFIX}*"]},
            {"Sid": "PassGatewayRole", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": [f"arn:aws:iam::*:role{naming.IAM_PATH}*"],
             "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
        ],
    }


# API operations whose IAM action has another name
ACTION_OF_OPERATION = {"s3:HeadBucket": "s3:ListBucket", "s3:ListObjectsV2": "s3:ListBucket",
                       "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock"}


def allowed_actions() -> set[str]:
    """Every ``service:Action`` the policy allows (no wildcards are used)."""
    return {a for s in controller_policy()["Statement"] for a in s["Action"]}


def action_of(operation: str) -> str:
    """The IAM action that authorizes ``service:Operation`` (an API call as botocore names it)."""
    return ACTION_OF_OPERATION.get(operation, operation)


def policy_json() -> str:
    return json.dumps(controller_policy(), indent=2)
