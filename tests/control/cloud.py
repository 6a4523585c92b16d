"""Helpers that build a small cloud in moto for the controller's tests: VPCs with public subnets, and counts of
what a link left behind."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from linker import naming
from linker.control.iam_policy import BOUNDARY_NAME, boundary_json
from linker.control.partition import partition_of


@dataclass(frozen=True)
class SiteVpc:
    region: str
    vpc: str
    public_table: str
    private_table: str
    main_table: str


def make_vpc(session: Any, region: str, cidr: str, public: bool = True, endpoint_url: str | None = None,
             tables: int = 3) -> SiteVpc:
    """A VPC with a public subnet (own table, 0.0.0.0/0 -> igw) and a private subnet (own table); with
    ``tables=1`` only the main table, with the default route, serving both subnets (fewer calls, faster tests).
    The account's permissions boundary for linker's roles is made too, as its administrator would."""
    make_boundary(session, region, endpoint_url)
    ec2 = session.client("ec2", region_name=region, endpoint_url=endpoint_url)
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    net = cidr.split(".")
    # a zone that offers the gateway's type (moto, like EC2, places a subnet given no zone in any, us-east-1e too)
    zone = f"{region}a"
    pub = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{net[0]}.{net[1]}.1.0/24",
                            AvailabilityZone=zone)["Subnet"]["SubnetId"]
    priv = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{net[0]}.{net[1]}.2.0/24",
                             AvailabilityZone=zone)["Subnet"]["SubnetId"]
    main = next(t["RouteTableId"] for t in ec2.describe_route_tables(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"]
        if any(a.get("Main") for a in t.get("Associations", [])))
    public_table = private_table = main
    if tables > 1:
        public_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        private_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=public_table, SubnetId=pub)
        ec2.associate_route_table(RouteTableId=private_table, SubnetId=priv)
    if public:
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        ec2.create_route(RouteTableId=public_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return SiteVpc(region, vpc, public_table, private_table, main)


def make_boundary(session: Any, region: str = "us-east-1", endpoint_url: str | None = None) -> None:
    """linker's permissions boundary, made as an administrator makes it once per account (README, Permissions)."""
    iam = session.client("iam", region_name="us-east-1", endpoint_url=endpoint_url)
    try:
        iam.create_policy(PolicyName=BOUNDARY_NAME, Path=naming.IAM_PATH,
                          PolicyDocument=boundary_json(partition_of(region)))
    except iam.exceptions.EntityAlreadyExistsException:
        pass


@lru_cache(maxsize=64)
def _client(session: Any, service: str, region: str, endpoint_url: str | None) -> Any:
    return session.client(service, region_name=region, endpoint_url=endpoint_url)  # building one is slow


def inventory(session: Any, link: str, regions: list[str], endpoint_url: str | None = None) -> dict[str, Any]:
    """Everything of ``link`` that exists, by kind and region: what a test compares between runs."""
    flt = [{"Name": f"tag:{naming.TAG_LINK}", "Values": [link]}]
    out: dict[str, Any] = {}
    iam = _client(session, "iam", "us-east-1", endpoint_url)
    roles = [r["RoleName"] for r in iam.list_roles(PathPrefix=naming.IAM_PATH)["Roles"]]
    profiles = [p["InstanceProfileName"] for p in iam.list_instance_profiles(PathPrefix=naming.IAM_PATH)[
        "InstanceProfiles"]]
    out["roles"] = sorted(roles)
    out["profiles"] = sorted(profiles)
    s3 = _client(session, "s3", "us-east-1", endpoint_url)
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"linker-{link}-")]
    out["buckets"] = sorted((b, s3.list_objects_v2(Bucket=b).get("KeyCount", 0)) for b in buckets)
    for region in regions:
        ec2 = _client(session, "ec2", region, endpoint_url)
        ssm = _client(session, "ssm", region, endpoint_url)
        instances = [i for r in ec2.describe_instances(Filters=flt)["Reservations"] for i in r["Instances"]
                     if i["State"]["Name"] != "terminated"]
        tables = ec2.describe_route_tables()["RouteTables"]
        out[region] = {
            "eips": len(ec2.describe_addresses(Filters=flt)["Addresses"]),
            "groups": len(ec2.describe_security_groups(Filters=flt)["SecurityGroups"]),
            "instances": len(instances),
            "params": sorted(p["Name"] for p in ssm.get_parameters_by_path(
                Path=naming.parameter_prefix(link), Recursive=True)["Parameters"]),
            "route_tags": sorted((t["RouteTableId"], tag["Key"]) for t in tables for tag in t.get("Tags", [])
                                 if tag["Key"].startswith("linker:route:")),
            "eni_routes": sorted((t["RouteTableId"], r["DestinationCidrBlock"]) for t in tables
                                 for r in t["Routes"] if r.get("NetworkInterfaceId")),
        }
    return out


class ReadyReporter:
    """A botocore hook standing in for the gateways' agents: after RunInstances (``after-call.ec2.RunInstances``),
    it publishes each new instance's own key, as a booted agent does (``naming.gateway_key_parameter``), and it
    records the calls that matter to a replacement, in order, in ``calls``. ``ready=False`` publishes nothing
    (a gateway that never boots)."""

    KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

    def __init__(self, session: Any, ready: bool = True, endpoint_url: str | None = None) -> None:
        self.session, self.ready, self.endpoint_url = session, ready, endpoint_url
        self.calls: list[tuple[str, str]] = []  # (action, what: an instance id, a route, a parameter name)

    def hooks(self) -> tuple[tuple[str, Any], ...]:
        return (("after-call.ec2.RunInstances", self.launched), ("provide-client-params.*.*", self.record))

    def launched(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        for i in parsed.get("Instances", []):
            tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            self.calls.append(("RunInstances", i["InstanceId"]))
            if self.ready and naming.TAG_SITE in tags:
                region = i["Placement"]["AvailabilityZone"][:-1]
                name = naming.gateway_key_parameter(tags[naming.TAG_LINK], tags[naming.TAG_SITE], i["InstanceId"])
                _client(self.session, "ssm", region, self.endpoint_url).put_parameter(
                    Name=name, Value=self.KEY, Type="String", Overwrite=True)

    def record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        name = model.name
        if name in ("AssociateAddress", "TerminateInstances"):
            self.calls.append((name, str(params.get("InstanceId") or params.get("InstanceIds"))))
        elif name in ("CreateRoute", "ReplaceRoute"):
            self.calls.append((name, f"{params['RouteTableId']} {params['DestinationCidrBlock']}"))
        elif name in ("GetParameter", "PutParameter") and "/gateways/" in params.get("Name", ""):
            self.calls.append((name, params["Name"]))
        elif name == "PutParameter" and params.get("Name", "").endswith("/membership"):
            self.calls.append((name, params["Value"]))
