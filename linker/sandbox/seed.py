"""The sandbox's own VPCs, laid out through its AWS API: a public and a private subnet, an internet gateway and a
workload host per region (what a user's account would already have before ``linker up``)."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from linker.control.facts import ami_parameter
from linker.errors import SandboxError
from linker.sandbox import addressing
from linker.sandbox.cloudview import TAG_INDEX, TAG_ROLE
from linker.sandbox.lifecycle import START_TIMEOUT, Sandbox
from linker.spec import DEFAULT_INSTANCE_TYPE


def ensure_vpcs(sandbox: Sandbox, regions: tuple[str, ...]) -> dict[str, int]:
    """A sandbox VPC (public and private subnet, internet gateway, workload host) in each region."""
    known = {r["region"]: int(i) for i, r in sandbox.refresh()["routers"].items()}
    found: dict[str, str] = {}
    for region in regions:
        vpcs = sandbox.client("ec2", region).describe_vpcs(
            Filters=[{"Name": "tag-key", "Values": [TAG_INDEX]}])["Vpcs"]
        for v in vpcs:
            tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
            known[region], found[region] = int(tags[TAG_INDEX]), v["VpcId"]
    indexes = addressing.assign_indexes(known, regions)
    for region in regions:
        try:
            _ensure_vpc(sandbox, region, addressing.vpc_plan(indexes[region]), found.get(region))
        except (BotoCoreError, ClientError) as exc:
            raise SandboxError(f"cannot lay out the sandbox VPC in {region}: {exc}",
                               fix=f"see the supervisor's log, {sandbox.layout.log_path}") from None
    return {r: indexes[r] for r in regions}

def _ensure_vpc(sandbox: Sandbox, region: str, plan: addressing.VpcPlan, vpc: str | None) -> None:
    ec2 = sandbox.client("ec2", region)

    def tags(kind: str, name: str, role: str, extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
        items = {"Name": name, TAG_ROLE: role, **(extra or {})}
        return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in items.items()]}]

    if vpc is None:
        vpc = ec2.create_vpc(CidrBlock=plan.cidr, TagSpecifications=tags(
            "vpc", f"sandbox-{region}", "vpc", {TAG_INDEX: str(plan.index), "linker:site": region}))["Vpc"]["VpcId"]
    in_vpc = [{"Name": "vpc-id", "Values": [vpc]}]
    # zones that offer the gateway's default type (given no zone, EC2 may pick one that does not); the second
    # public subnet goes to the second of them, so that a --ha site's gateways land in two zones
    zones = sorted(o["Location"] for o in ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [DEFAULT_INSTANCE_TYPE]}],
    )["InstanceTypeOfferings"])
    subnets = {s["CidrBlock"]: s["SubnetId"] for s in ec2.describe_subnets(Filters=in_vpc)["Subnets"]}
    layout = ((plan.public_subnet, "public", zones[0]), (plan.private_subnet, "private", zones[0]),
              (plan.second_public_subnet, "public-2", zones[1 % len(zones)]))
    for cidr, name, zone in layout:
        if cidr not in subnets:
            subnets[cidr] = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone,
                                              TagSpecifications=tags(
                "subnet", f"sandbox-{region}-{name}", name))["Subnet"]["SubnetId"]
    igws = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])
    if igws["InternetGateways"]:
        igw = igws["InternetGateways"][0]["InternetGatewayId"]
    else:
        igw = ec2.create_internet_gateway(TagSpecifications=tags(
            "internet-gateway", f"sandbox-{region}", "internet-gateway"))["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    tables = ec2.describe_route_tables(Filters=[*in_vpc, {"Name": f"tag:{TAG_ROLE}", "Values": ["public"]}])
    if not tables["RouteTables"]:
        table = ec2.create_route_table(VpcId=vpc, TagSpecifications=tags(
            "route-table", f"sandbox-{region}-public", "public"))["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    else:
        table = tables["RouteTables"][0]["RouteTableId"]
    associated = {a.get("SubnetId") for t in tables["RouteTables"] for a in t.get("Associations", [])}
    for cidr in (plan.public_subnet, plan.second_public_subnet):
        if subnets[cidr] not in associated:  # a sandbox made by an older linker has one public subnet
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnets[cidr])
    groups = ec2.describe_security_groups(Filters=[*in_vpc, {"Name": "group-name",
                                                              "Values": ["sandbox-workload"]}])["SecurityGroups"]
    if groups:
        group = groups[0]["GroupId"]
    else:
        group = ec2.create_security_group(GroupName="sandbox-workload", VpcId=vpc,
                                          Description="the sandbox's workload host: anything from 10.0.0.0/8",
                                          TagSpecifications=tags("security-group", "sandbox-workload",
                                                                 "workload"))["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    workloads = ec2.describe_instances(Filters=[*in_vpc, {"Name": f"tag:{TAG_ROLE}", "Values": ["workload"]},
                                                {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    if not any(r["Instances"] for r in workloads["Reservations"]):
        ami = sandbox.client("ssm", region).get_parameter(Name=ami_parameter("x86_64"))["Parameter"]["Value"]
        ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                          SubnetId=subnets[plan.private_subnet], PrivateIpAddress=plan.workload_ip,
                          SecurityGroupIds=[group], TagSpecifications=tags("instance", "workload", "workload"))

def wait_materialised(sandbox: Sandbox, regions: tuple[str, ...], timeout: float = START_TIMEOUT) -> None:
    """Until every region's router and workload host exist."""
    deadline = time.monotonic() + timeout
    while True:
        state = sandbox.refresh()
        routed = {r["region"] for r in state["routers"].values()}
        workloads = {h["region"] for h in state["hosts"].values() if h["role"] == "workload"}
        missing = [r for r in regions if r not in routed or r not in workloads]
        if not missing:
            return
        if time.monotonic() > deadline:
            why = "; ".join(f"{i}: {m}" for i, m in state.get("failed", {}).items()) or "timed out"
            raise SandboxError(f"the sandbox could not build {', '.join(missing)}: {why}",
                               fix=f"see the supervisor's log, {sandbox.layout.log_path}")
        time.sleep(0.2)
