"""up / down against moto in-process: what is made, idempotence, regions added and removed, the lock."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from linker import naming
from linker.contract import Membership
from linker.control.aws import Clients, ReadOnlyViolation, Target
from linker.control.lock import acquire
from linker.control.operations import Options, down_link, plan_link, up_link
from linker.errors import LockHeldError
from linker.spec import LinkSpec
from tests.control.cloud import ReadyReporter, inventory, make_vpc

E, W, S = "us-east-1", "eu-west-1", "ap-south-1"
FAST = Options(poll=0.0, timeout=5.0)


def yes(_changes: object) -> bool:
    return True


def test_up_makes_a_hardened_gateway_per_site_and_twice_changes_nothing(aws) -> None:  # type: ignore[no-untyped-def]
    east, west = make_vpc(aws, E, "10.10.0.0/16"), make_vpc(aws, W, "10.20.0.0/16")
    spec = LinkSpec("demo", (E, W), port=51999)
    assert up_link(Target(), spec, yes, options=FAST)
    first = inventory(aws, "demo", [E, W])
    assert first[E]["eips"] == first[E]["groups"] == first[E]["instances"] == 1
    assert [n for n, objects in first["buckets"]] == ["linker-demo-eu-west-1-123456789012",
                                                      "linker-demo-us-east-1-123456789012"]
    assert all(objects == 1 for _, objects in first["buckets"])

    ec2, ssm, iam = aws.client("ec2", region_name=E), aws.client("ssm", region_name=E), aws.client("iam")
    flt = [{"Name": f"tag:{naming.TAG_LINK}", "Values": ["demo"]}]
    west_ip = aws.client("ec2", region_name=W).describe_addresses(Filters=flt)["Addresses"][0]["PublicIp"]
    group = ec2.describe_security_groups(Filters=flt)["SecurityGroups"][0]
    rules = {(p["IpProtocol"], p.get("FromPort"), r["CidrIp"]) for p in group["IpPermissions"] for r in p["IpRanges"]}
    assert rules == {("udp", 51999, f"{west_ip}/32"), ("-1", None, "10.10.0.0/16")}  # no SSH, nothing else
    instance = ec2.describe_instances(Filters=flt)["Reservations"][0]["Instances"][0]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["IamInstanceProfile"]["Arn"].endswith("/linker-demo-us-east-1")
    assert dict((t["Key"], t["Value"]) for t in instance["Tags"])[naming.TAG_MANAGED_BY] == "linker"
    attr = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="sourceDestCheck")
    assert attr["SourceDestCheck"]["Value"] is False
    user_data = base64.b64decode(ec2.describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="userData")["UserData"]["Value"]).decode()
    assert user_data.startswith("#cloud-config") and '"listen_port": 51999' in user_data
    eip = ec2.describe_addresses(Filters=flt)["Addresses"][0]
    assert eip["InstanceId"] == instance["InstanceId"]

    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for table in (east.public_table, east.private_table, east.main_table):
        routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
        assert {"10.20.0.0/16": eni}.items() <= {r["DestinationCidrBlock"]: r.get("NetworkInterfaceId")
                                                 for r in routes}.items()
    doc = Membership.from_json(ssm.get_parameter(Name=naming.membership_parameter("demo"))["Parameter"]["Value"])
    assert [(s.site, s.eip, s.cidrs, s.port) for s in doc.sites] == [
        (W, west_ip, ("10.20.0.0/16",), 51999), (E, eip["PublicIp"], ("10.10.0.0/16",), 51999)]
    role = "linker-demo-us-east-1"
    policy = iam.get_role_policy(RoleName=role, PolicyName=naming.INLINE_POLICY)["PolicyDocument"]
    resources = [r for st in policy["Statement"] for r in st["Resource"] if isinstance(st["Resource"], list)]
    assert all("parameter/linker/demo/" in r for r in resources if ":ssm:" in r and ":instance/" not in r)
    assert [r for r in resources if ":s3:" in r] == ["arn:aws:s3:::linker-demo-us-east-1-123456789012/wheels/*"]
    wheel_key = next(k for k in aws.client("s3").list_objects_v2(
        Bucket="linker-demo-us-east-1-123456789012")["Contents"])["Key"]
    assert wheel_key in user_data
    # no managed policy: Session Manager's own actions are in the inline policy, not every parameter of the account
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert {"ssm:UpdateInstanceInformation", "ssmmessages:OpenDataChannel"} <= actions
    assert not [a for a in actions if a.endswith("*")]

    assert plan_link(Target(), spec) == []
    assert up_link(Target(), spec, yes, options=FAST) == []
    assert inventory(aws, "demo", [E, W]) == first
    assert west.vpc != east.vpc


def test_three_regions_then_one_removed_then_added_back(aws) -> None:  # type: ignore[no-untyped-def]
    for region, cidr in ((E, "10.10.0.0/16"), (W, "10.20.0.0/16"), (S, "10.30.0.0/16")):
        make_vpc(aws, region, cidr, tables=1)
    up_link(Target(), LinkSpec("mesh", (E, W, S)), yes, options=FAST)
    three = inventory(aws, "mesh", [E, W, S])
    assert len(three[E]["eni_routes"]) == 2 and three[S]["instances"] == 1
    east_instance = _instances(aws, E, "mesh")

    up_link(Target(), LinkSpec("mesh", (E, W)), yes, options=FAST)
    two = inventory(aws, "mesh", [E, W, S])
    assert two[S] == {"eips": 0, "groups": 0, "instances": 0, "params": [], "route_tags": [], "eni_routes": []}
    assert len(two[E]["eni_routes"]) == 1 and "linker-mesh-ap-south-1" not in two["roles"]
    assert _instances(aws, E, "mesh") == east_instance  # the remaining sites were not replaced
    doc = json.loads(aws.client("ssm", region_name=W).get_parameter(
        Name=naming.membership_parameter("mesh"))["Parameter"]["Value"])
    assert [s["site"] for s in doc["sites"]] == [W, E]

    up_link(Target(), LinkSpec("mesh", (E, W, S)), yes, options=FAST)
    again = inventory(aws, "mesh", [E, W, S])
    assert [_counts(again[r]) for r in (E, W, S)] == [_counts(three[r]) for r in (E, W, S)]
    assert again["roles"] == three["roles"]
    assert _instances(aws, E, "mesh") == east_instance
    assert plan_link(Target(), LinkSpec("mesh", (W, S, E))) == []  # region order does not matter


def _counts(region: dict) -> tuple:
    return (region["eips"], region["groups"], region["instances"], region["params"], len(region["route_tags"]),
            len(region["eni_routes"]))


def _instances(aws, region: str, link: str) -> list[str]:  # type: ignore[no-untyped-def]
    ec2 = aws.client("ec2", region_name=region)
    return sorted(i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": f"tag:{naming.TAG_LINK}", "Values": [link]},
        {"Name": "instance-state-name", "Values": ["running", "pending"]}])["Reservations"] for i in r["Instances"])


def test_replacing_the_instance_keeps_the_eip_and_down_spares_foreign_routes(aws) -> None:  # type: ignore[no-untyped-def]
    east = make_vpc(aws, E, "10.10.0.0/16")
    make_vpc(aws, W, "10.20.0.0/16", tables=1)
    ec2 = aws.client("ec2", region_name=E)
    igw = ec2.describe_internet_gateways()["InternetGateways"][0]["InternetGatewayId"]
    ec2.create_route(RouteTableId=east.private_table, DestinationCidrBlock="192.168.9.0/24", GatewayId=igw)
    up_link(Target(), LinkSpec("demo", (E, W)), yes, options=FAST)
    flt = [{"Name": f"tag:{naming.TAG_LINK}", "Values": ["demo"]}]
    before = ec2.describe_addresses(Filters=flt)["Addresses"][0]
    old = _instances(aws, E, "demo")
    reporter = ReadyReporter(aws)  # the new gateway reports ready (make before break waits for it)
    up_link(Target(), LinkSpec("demo", (E, W), instance_type="t3.small"), yes,
            options=replace(FAST, hooks=reporter.hooks()))
    after = ec2.describe_addresses(Filters=flt)["Addresses"][0]
    new = _instances(aws, E, "demo")
    assert after["AllocationId"] == before["AllocationId"] and after["PublicIp"] == before["PublicIp"]
    assert len(new) == 1 and new != old and after["InstanceId"] == new[0]

    assert down_link(Target(), "demo", yes, options=FAST)
    gone = inventory(aws, "demo", [E, W])
    assert not gone["roles"] and not gone["buckets"] and not any(any(v.values()) for k, v in gone.items()
                                                                 if k in (E, W))
    routes = ec2.describe_route_tables(RouteTableIds=[east.private_table])["RouteTables"][0]["Routes"]
    assert any(r.get("DestinationCidrBlock") == "192.168.9.0/24" for r in routes)
    assert down_link(Target(), "demo", yes, options=FAST) == []  # nothing left: nothing to do


def test_a_held_lock_refuses_an_expired_one_is_taken_over_force_breaks_a_live_one(aws) -> None:  # type: ignore[no-untyped-def]
    make_vpc(aws, E, "10.10.0.0/16", tables=1)
    make_vpc(aws, W, "10.20.0.0/16", tables=1)
    spec = LinkSpec("locked", (E, W))
    held = acquire(Clients(Target()), "locked", W, "linker up (another run)")
    with pytest.raises(LockHeldError, match="another run"):
        up_link(Target(), spec, yes, options=FAST)
    assert inventory(aws, "locked", [E, W])[E]["params"] == []  # nothing was made
    assert up_link(Target(), spec, yes, options=Options(force_unlock=True, poll=0.0))
    held.release()  # no longer ours: must not remove anything
    # a crashed run's lock in the link's home (the first region of its first up), its lease over 10 s ago
    stale = acquire(Clients(Target()), "locked", E, "linker up (crashed)", lease=-10.0)
    assert down_link(Target(), "locked", yes, options=FAST)  # expired lease: taken over
    assert stale.owner
    assert inventory(aws, "locked", [E, W])[W]["params"] == inventory(aws, "locked", [E, W])[E]["params"] == []


def test_the_planners_clients_cannot_write(aws) -> None:  # type: ignore[no-untyped-def]
    clients = Clients(Target(), read_only=True)
    with pytest.raises(ReadOnlyViolation):
        clients.ssm(E).put_parameter(Name="/linker/x/y", Value="v", Type="String")
    with pytest.raises(ReadOnlyViolation):
        clients.ec2(E).allocate_address(Domain="vpc")
    assert aws.client("ec2", region_name=E).describe_addresses()["Addresses"] == []
