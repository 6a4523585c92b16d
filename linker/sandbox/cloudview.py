"""What the sandbox materialises, read from its EC2 API into plain frozen data (Describe calls only).

A sandbox VPC carries the tag ``linker-sandbox:index`` (its place in the address plan). Everything else (instances,
their ENIs and security groups, Elastic IPs, route tables) is read as any EC2 client would see it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

TAG_INDEX = "linker-sandbox:index"  # on a sandbox VPC: its index in linker.sandbox.addressing
TAG_ROLE = "linker-sandbox:role"  # on what the sandbox itself makes: vpc, workload, ...
LIVE = ("pending", "running")


@dataclass(frozen=True)
class Rule:
    """An ingress rule, flattened: protocol ('tcp', 'udp', 'icmp', '-1'), ports, and one source."""

    protocol: str
    from_port: int | None
    to_port: int | None
    cidr: str | None = None
    group: str | None = None  # a source security group (its members' private addresses)


@dataclass(frozen=True)
class Instance:
    id: str
    state: str
    subnet_id: str
    eni_id: str
    private_ip: str
    source_dest_check: bool
    groups: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]

    @property
    def role(self) -> str:
        """``workload`` (the sandbox's own host), ``gateway`` (a link's), else ``instance``."""
        tags = dict(self.tags)
        if TAG_ROLE in tags:
            return tags[TAG_ROLE]
        return "gateway" if "linker:link" in tags else "instance"

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True)
class Route:
    destination: str
    kind: str  # local, gateway, eni, instance, other
    target: str


@dataclass(frozen=True)
class Table:
    id: str
    is_main: bool
    subnets: tuple[str, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Vpc:
    region: str
    id: str
    index: int
    cidr: str
    internet_gateway: str | None
    subnets: tuple[tuple[str, str], ...]  # (subnet id, CIDR)
    tables: tuple[Table, ...]
    instances: tuple[Instance, ...]
    public_ips: tuple[tuple[str, str], ...]  # (private address, Elastic IP or the instance's own public one)
    groups: tuple[tuple[str, tuple[Rule, ...]], ...]  # (security group id, ingress rules)

    def table_of(self, subnet_id: str) -> Table | None:
        """The route table a subnet uses: its own association, else the main table."""
        own = next((t for t in self.tables if subnet_id in t.subnets), None)
        return own or next((t for t in self.tables if t.is_main), None)

    def live(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.state in LIVE)

    def public_ip(self, private_ip: str) -> str | None:
        return dict(self.public_ips).get(private_ip)

    def rules(self, group: str) -> tuple[Rule, ...]:
        return dict(self.groups).get(group, ())


def _tags(items: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((t["Key"], t["Value"]) for t in items or ()))


def _pages(client: Any, op: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    return [item for page in client.get_paginator(op).paginate(**kwargs) for item in page[key]]


def read_region(ec2: Any, region: str) -> tuple[Vpc, ...]:
    """The sandbox VPCs of ``region`` and what is in them."""
    vpcs = _pages(ec2, "describe_vpcs", "Vpcs", Filters=[{"Name": "tag-key", "Values": [TAG_INDEX]}])
    if not vpcs:
        return ()
    ids = [v["VpcId"] for v in vpcs]
    by_vpc = [{"Name": "vpc-id", "Values": ids}]
    subnets = _pages(ec2, "describe_subnets", "Subnets", Filters=by_vpc)
    tables = _pages(ec2, "describe_route_tables", "RouteTables", Filters=by_vpc)
    igws = _pages(ec2, "describe_internet_gateways", "InternetGateways",
                  Filters=[{"Name": "attachment.vpc-id", "Values": ids}])
    reservations = _pages(ec2, "describe_instances", "Reservations", Filters=by_vpc)
    instances = [i for r in reservations for i in r["Instances"]]
    addresses = ec2.describe_addresses()["Addresses"]
    groups = _pages(ec2, "describe_security_groups", "SecurityGroups", Filters=by_vpc)
    out = []
    for v in vpcs:
        vid = v["VpcId"]
        igw = next((g["InternetGatewayId"] for g in igws
                    if any(a.get("VpcId") == vid for a in g.get("Attachments", []))), None)
        mine = [_instance(i) for i in instances if i.get("VpcId") == vid and i.get("NetworkInterfaces")]
        privates = {i.eni_id: i.private_ip for i in mine}
        by_private = {privates[a["NetworkInterfaceId"]]: a["PublicIp"] for a in addresses
                      if a.get("NetworkInterfaceId") in privates}
        for i in instances:  # an address the instance was launched with, until an Elastic IP replaces it
            if i.get("VpcId") == vid and i.get("PublicIpAddress") and i.get("PrivateIpAddress") not in by_private:
                by_private[i["PrivateIpAddress"]] = i["PublicIpAddress"]
        public = tuple(sorted(by_private.items()))
        out.append(Vpc(
            region=region, id=vid, index=int(dict(_tags(v.get("Tags")))[TAG_INDEX]), cidr=v["CidrBlock"],
            internet_gateway=igw,
            subnets=tuple(sorted((s["SubnetId"], s["CidrBlock"]) for s in subnets if s["VpcId"] == vid)),
            tables=tuple(_table(t) for t in sorted(tables, key=lambda t: t["RouteTableId"]) if t["VpcId"] == vid),
            instances=tuple(sorted(mine, key=lambda i: i.id)), public_ips=public,
            groups=tuple(sorted((g["GroupId"], _rules(g)) for g in groups if g.get("VpcId") == vid))))
    return tuple(sorted(out, key=lambda v: v.index))


def _instance(i: dict[str, Any]) -> Instance:
    enis = sorted(i["NetworkInterfaces"], key=lambda n: n.get("Attachment", {}).get("DeviceIndex", 0))
    eni = enis[0]
    return Instance(
        id=i["InstanceId"], state=i["State"]["Name"], subnet_id=eni.get("SubnetId") or i.get("SubnetId", ""),
        eni_id=eni["NetworkInterfaceId"], private_ip=eni.get("PrivateIpAddress") or i.get("PrivateIpAddress", ""),
        source_dest_check=bool(i.get("SourceDestCheck", eni.get("SourceDestCheck", True))),
        groups=tuple(sorted(g["GroupId"] for g in eni.get("Groups") or i.get("SecurityGroups") or [])),
        tags=_tags(i.get("Tags")))


def _table(t: dict[str, Any]) -> Table:
    routes = []
    for r in t.get("Routes", []):
        dest = r.get("DestinationCidrBlock")
        if not dest:
            continue  # IPv6 and prefix lists: the sandbox is IPv4
        if r.get("GatewayId") == "local":
            routes.append(Route(dest, "local", "local"))
        elif r.get("GatewayId"):
            routes.append(Route(dest, "gateway", r["GatewayId"]))
        elif r.get("NetworkInterfaceId"):
            routes.append(Route(dest, "eni", r["NetworkInterfaceId"]))
        elif r.get("InstanceId"):
            routes.append(Route(dest, "instance", r["InstanceId"]))
        else:
            target = next((str(v) for k, v in r.items() if k.endswith("Id") and v), "?")
            routes.append(Route(dest, "other", target))
    assoc = t.get("Associations", [])
    return Table(t["RouteTableId"], any(a.get("Main") for a in assoc),
                 tuple(sorted(a["SubnetId"] for a in assoc if a.get("SubnetId"))), tuple(routes))


def _rules(g: dict[str, Any]) -> tuple[Rule, ...]:
    rules = set()
    for p in g.get("IpPermissions", []):
        proto = str(p.get("IpProtocol", "-1"))
        low, high = p.get("FromPort"), p.get("ToPort")
        if proto == "-1":
            low = high = None
        for r in p.get("IpRanges", []):
            rules.add(Rule(proto, low, high, cidr=r["CidrIp"]))
        for pair in p.get("UserIdGroupPairs", []):
            rules.add(Rule(proto, low, high, group=pair["GroupId"]))
    return tuple(sorted(rules, key=str))


def user_data(ec2: Any, instance_id: str) -> bytes | None:
    """The instance's user-data, decoded from the API's base64; None when it has none."""
    reply = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    value = (reply.get("UserData") or {}).get("Value")
    return base64.b64decode(value) if value else None
