"""Read AWS into the facts model: what exists in each region that matters to one link.

Only Describe/Get/List calls are made here (``linker plan`` runs this with a read-only client). Thread-safe: the
regions are read in parallel, each by its own thread, through thread-safe boto3 clients. Every AWS failure is a
CloudError (``cloud_call``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from linker import naming
from linker.control.aws import Clients, cloud_call, is_not_found
from linker.control.facts.model import (
    Bucket,
    Eip,
    IamFacts,
    Instance,
    LinkFacts,
    Permission,
    RegionFacts,
    Route,
    RouteTable,
    SecurityGroup,
    Subnet,
    Tags,
    Vpc,
)
from linker.control.iam_policy import boundary_arn
from linker.control.partition import partition_of
from linker.spec import gateway_architecture

LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")


def _tags(items: Iterable[dict[str, str]] | None) -> Tags:
    return tuple(sorted((t["Key"], t["Value"]) for t in items or ()))


def gather(clients: Clients, link: str, regions: Iterable[str], instance_type: str,
           max_workers: int = 8) -> LinkFacts:
    """Facts of ``link`` in ``regions`` and in every other region its membership names, read in parallel."""
    wanted = list(dict.fromkeys(regions))
    arch = gateway_architecture(instance_type)
    account = account_id(clients)
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(wanted)))) as pool:
        found = list(pool.map(lambda r: gather_region(clients, link, r, arch, account, instance_type), wanted))
    extra = sorted({s for rf in found for s in rf.membership_sites(link)} - set(wanted))
    if extra:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(extra)))) as pool:
            found += list(pool.map(lambda r: gather_region(clients, link, r, None, account), extra))
    return LinkFacts(link, tuple(found))


def terraform_managed(clients: Clients, link: str, regions: Iterable[str], max_workers: int = 8,
                      ) -> dict[str, tuple[str, ...]]:
    """{region: ids} of ``link``'s resources tagged ``linker:managed-by=terraform``, in the regions that have any.

    A few Describe calls per region, read-only: ``up`` and ``down`` ask this before they take the link's lock, so
    that a link Terraform manages is refused before anything at all is written.
    """
    flt = [{"Name": f"tag:{naming.TAG_LINK}", "Values": [link]},
           {"Name": f"tag:{naming.TAG_MANAGED_BY}", "Values": [naming.MANAGED_BY_TERRAFORM]}]

    def look(region: str) -> tuple[str, ...]:
        ec2 = clients.ec2(region)
        with cloud_call("DescribeAddresses", region):
            found = [a["AllocationId"] for a in ec2.describe_addresses(Filters=flt)["Addresses"]]
        with cloud_call("DescribeSecurityGroups", region):
            found += [g["GroupId"] for g in _pages(ec2, "describe_security_groups", "SecurityGroups", Filters=flt)]
        with cloud_call("DescribeInstances", region):
            found += [i["InstanceId"] for page in _raw_pages(ec2, "describe_instances", Filters=[
                *flt, {"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
                for res in page["Reservations"] for i in res["Instances"]]
        return tuple(found)

    wanted = list(dict.fromkeys(regions))
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(wanted)))) as pool:
        found = list(pool.map(look, wanted))
    return {r: ids for r, ids in zip(wanted, found, strict=True) if ids}


def account_id(clients: Clients) -> str:
    """The AWS account the credentials belong to (bucket names include it)."""
    with cloud_call("GetCallerIdentity"):
        return str(clients.get("sts", "us-east-1").get_caller_identity()["Account"])


def gather_region(clients: Clients, link: str, region: str, arch: str | None, account: str,
                  instance_type: str | None = None) -> RegionFacts:
    """Facts of one region; ``arch`` set: also look up the gateway AMI for that architecture; ``instance_type``
    set: also the availability zones that offer it."""
    ec2 = clients.ec2(region)
    flt = [{"Name": f"tag:{naming.TAG_LINK}", "Values": [link]}]
    with cloud_call("DescribeVpcs", region):
        vpcs = tuple(Vpc(v["VpcId"], tuple(a["CidrBlock"] for a in v.get("CidrBlockAssociationSet", [])
                                           if a.get("CidrBlockState", {}).get("State", "associated") == "associated")
                         or (v["CidrBlock"],), bool(v.get("IsDefault")), _tags(v.get("Tags")))
                     for v in _pages(ec2, "describe_vpcs", "Vpcs"))
    with cloud_call("DescribeSubnets", region):
        subnets = tuple(Subnet(s["SubnetId"], s["VpcId"], s.get("AvailabilityZone", ""))
                        for s in _pages(ec2, "describe_subnets", "Subnets"))
    with cloud_call("DescribeRouteTables", region):
        tables = tuple(_route_table(t) for t in _pages(ec2, "describe_route_tables", "RouteTables"))
    with cloud_call("DescribeAddresses", region):
        eips = tuple(Eip(a["AllocationId"], a["PublicIp"], a.get("AssociationId") or None,
                         a.get("InstanceId") or None, _tags(a.get("Tags")))
                     for a in ec2.describe_addresses(Filters=flt)["Addresses"])
    with cloud_call("DescribeSecurityGroups", region):
        groups = tuple(_security_group(g) for g in _pages(ec2, "describe_security_groups", "SecurityGroups",
                                                           Filters=flt))
    with cloud_call("DescribeInstances", region):
        instances = tuple(_instance(i) for page in _raw_pages(ec2, "describe_instances", Filters=[
            *flt, {"Name": "instance-state-name", "Values": list(LIVE_STATES)}])
            for res in page["Reservations"] for i in res["Instances"])
    params, ami = _parameters(clients, link, region, arch)
    return RegionFacts(region, vpcs, subnets, tables, eips, groups, instances, _iam(clients, link, region, account),
                       params, ami, _bucket(clients, naming.bucket_name(link, region, account), region),
                       _offered_azs(ec2, region, instance_type) if instance_type else None,
                       _prefix_lists(ec2, region, tables))


def _prefix_lists(ec2: Any, region: str, tables: tuple[RouteTable, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The CIDRs of each prefix list the route tables route (a covering route may be one, see plan._plan_routes)."""
    out = []
    for pl in sorted({r.destination for t in tables for r in t.routes if r.destination.startswith("pl-")}):
        with cloud_call("GetManagedPrefixListEntries", region, pl):
            out.append((pl, tuple(sorted(e["Cidr"] for e in _pages(
                ec2, "get_managed_prefix_list_entries", "Entries", PrefixListId=pl)))))
    return tuple(out)


def _offered_azs(ec2: Any, region: str, instance_type: str) -> frozenset[str]:
    with cloud_call("DescribeInstanceTypeOfferings", region, instance_type):
        return frozenset(o["Location"] for o in _pages(
            ec2, "describe_instance_type_offerings", "InstanceTypeOfferings", LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": [instance_type]}]))


def _bucket(clients: Clients, name: str, region: str) -> Bucket:
    s3 = clients.get("s3", region)
    with cloud_call("HeadBucket", region, name):
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("403", "AccessDenied"):
                return Bucket(name, exists=True, accessible=False)
            if is_not_found(exc):
                return Bucket(name)
            raise
    with cloud_call("GetBucketTagging", region, name):
        try:
            tags = _tags(s3.get_bucket_tagging(Bucket=name)["TagSet"])
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            tags = ()
    with cloud_call("ListObjectsV2", region, name):
        keys = tuple(sorted(o["Key"] for page in _raw_pages(s3, "list_objects_v2", Bucket=name)
                            for o in page.get("Contents", [])))
    return Bucket(name, True, True, tags, keys)


def _pages(client: Any, op: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [item for page in _raw_pages(client, op, **kwargs) for item in page[key]]


def _raw_pages(client: Any, op: str, **kwargs: Any) -> list[dict[str, Any]]:
    return list(client.get_paginator(op).paginate(**kwargs))


def _route_table(t: dict[str, Any]) -> RouteTable:
    routes = []
    for r in t.get("Routes", []):
        dest = r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock") or r.get("DestinationPrefixListId")
        target = next((r[k] for k in ("GatewayId", "NetworkInterfaceId", "InstanceId", "NatGatewayId",
                                      "TransitGatewayId", "VpcPeeringConnectionId", "LocalGatewayId") if r.get(k)), "")
        if dest:
            routes.append(Route(dest, target, r.get("NetworkInterfaceId") or None))
    assoc = t.get("Associations", [])
    return RouteTable(t["RouteTableId"], t["VpcId"], any(a.get("Main") for a in assoc),
                      tuple(sorted(a["SubnetId"] for a in assoc if a.get("SubnetId"))), tuple(routes),
                      _tags(t.get("Tags")))


def _security_group(g: dict[str, Any]) -> SecurityGroup:
    def permissions(key: str) -> frozenset[Permission]:
        return frozenset(Permission(str(p["IpProtocol"]), p.get("FromPort"), p.get("ToPort"), r["CidrIp"])
                         for p in g.get(key, []) for r in p.get("IpRanges", []))

    return SecurityGroup(g["GroupId"], g.get("VpcId", ""), permissions("IpPermissions"), _tags(g.get("Tags")),
                         permissions("IpPermissionsEgress"))


def _instance(i: dict[str, Any]) -> Instance:
    enis = sorted(i.get("NetworkInterfaces", []), key=lambda n: n.get("Attachment", {}).get("DeviceIndex", 0))
    return Instance(i["InstanceId"], i["State"]["Name"], enis[0]["NetworkInterfaceId"] if enis else None,
                    i.get("SubnetId"), i.get("InstanceType", ""), bool(i.get("SourceDestCheck", True)),
                    i.get("MetadataOptions", {}).get("HttpTokens", "optional"), str(i.get("LaunchTime", "")),
                    _tags(i.get("Tags")), i.get("PrivateIpAddress") or None)


def _parameters(clients: Clients, link: str, region: str,
                arch: str | None) -> tuple[tuple[tuple[str, str], ...], str | None]:
    ssm = clients.ssm(region)
    with cloud_call("GetParametersByPath", region, naming.parameter_prefix(link)):
        params = tuple(sorted((p["Name"], p["Value"]) for p in _pages(
            ssm, "get_parameters_by_path", "Parameters", Path=naming.parameter_prefix(link), Recursive=True)))
    ami = None
    if arch is not None:
        name = ami_parameter(arch)
        with cloud_call("GetParameter", region, name):
            try:
                ami = ssm.get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
    return params, ami


def ami_parameter(arch: str) -> str:
    """The public SSM parameter holding the latest Amazon Linux 2023 AMI of ``arch`` in each region."""
    return f"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"


def _iam(clients: Clients, link: str, site: str, account: str) -> IamFacts:
    iam, name = clients.iam(), naming.resource_name(link, site)
    boundary = boundary_arn(partition_of(site), account)
    with cloud_call("GetRole", None, name):
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            role = None
    inline, attached = None, ()
    if role is not None:
        with cloud_call("GetRolePolicy", None, name):
            try:
                doc = iam.get_role_policy(RoleName=name, PolicyName=naming.INLINE_POLICY)["PolicyDocument"]
                inline = canonical_policy(doc)
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
        with cloud_call("ListAttachedRolePolicies", None, name):
            attached = tuple(sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(
                RoleName=name)["AttachedPolicies"]))
    with cloud_call("GetInstanceProfile", None, name):
        try:
            profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            profile = None
    return IamFacts(role is not None, _tags(role.get("Tags")) if role else (), inline, attached,
                    profile is not None, tuple(r["RoleName"] for r in profile["Roles"]) if profile else (),
                    role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn") if role else None,
                    boundary, _policy_exists(clients, boundary))


def _policy_exists(clients: Clients, arn: str) -> bool:
    with cloud_call("GetPolicy", None, arn):
        try:
            clients.iam().get_policy(PolicyArn=arn)
            return True
        except ClientError as exc:
            if not is_not_found(exc):
                raise
            return False


def canonical_policy(doc: Any) -> str:
    """A policy document as canonical JSON (IAM returns it URL-decoded as a dict or a string)."""
    if isinstance(doc, str):
        from urllib.parse import unquote
        doc = json.loads(unquote(doc))
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))
