"""Make before break against moto: the order of the calls, the pin, and a gateway that never reports ready.

The gateways' agents are played by ``ReadyReporter`` (a botocore hook that publishes a new instance's own key as
its booted agent would, or never does)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest

from linker import __version__, naming
from linker.control import operations
from linker.control.aws import Target
from linker.control.operations import Options, plan_link, up_link
from linker.control.package import Package
from linker.errors import CloudError
from linker.spec import LinkSpec
from tests.control.cloud import ReadyReporter, make_vpc

E, W = "us-east-1", "eu-west-1"
SPEC = LinkSpec("demo", (E, W))
FAST = Options(poll=0.0, timeout=5.0)
NEWER = Package(f"linker-{__version__}-gateway-newer.tar", b"another build", "cd" * 32)


def yes(_changes: object) -> bool:
    return True


def gateways(aws, region: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    ec2 = aws.client("ec2", region_name=region)
    found = [i for r in ec2.describe_instances(Filters=[
        {"Name": f"tag:{naming.TAG_LINK}", "Values": ["demo"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"] for i in r["Instances"]]
    return {i["InstanceId"]: {t["Key"]: t["Value"] for t in i["Tags"]} for i in found}


def eip_holder(aws, region: str) -> str:  # type: ignore[no-untyped-def]
    flt = [{"Name": f"tag:{naming.TAG_LINK}", "Values": ["demo"]}]
    return str(aws.client("ec2", region_name=region).describe_addresses(Filters=flt)["Addresses"][0]["InstanceId"])


def wheels(aws, region: str) -> list[str]:  # type: ignore[no-untyped-def]
    s3 = aws.client("s3", region_name=region)
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(f"linker-demo-{region}"))
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.fixture
def link(aws):  # type: ignore[no-untyped-def]
    """A two-site link whose gateways reported ready; yields the tables of the east VPC."""
    east = make_vpc(aws, E, "10.10.0.0/16", tables=1)
    make_vpc(aws, W, "10.20.0.0/16", tables=1)
    up_link(Target(), SPEC, yes, options=replace(FAST, hooks=ReadyReporter(aws).hooks()))
    return east


def test_another_build_keeps_the_gateways_and_says_so_then_upgrade_replaces_them_before_breaking(
        aws, link, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    first = gateways(aws, E)
    (old,) = first
    old_wheels = wheels(aws, E)
    assert first[old][naming.TAG_VERSION] == __version__ and first[old][naming.TAG_PACKAGE] in old_wheels
    monkeypatch.setattr(operations.package, "build", lambda arch="x86_64": NEWER)

    # a controller of another build: nothing changes, the operator is told
    with caplog.at_level(logging.WARNING, logger="linker.control"):
        assert up_link(Target(), SPEC, yes, options=FAST) == []
    assert "`linker up --upgrade`" in caplog.text and f"gateways of {E} run linker {__version__}" in caplog.text
    notes = plan_link(Target(), SPEC)
    assert {(c.action, c.kind) for c in notes} == {("note", "gateway-version")}
    assert gateways(aws, E) == first and wheels(aws, E) == old_wheels

    # --upgrade: launched beside the old one, awaited, then the EIP and routes, the membership, then the old goes
    reporter = ReadyReporter(aws)
    assert up_link(Target(), SPEC, yes, options=replace(FAST, upgrade=True, hooks=reporter.hooks(), max_workers=1))
    (new,) = gateways(aws, E)
    assert new != old and eip_holder(aws, E) == new
    calls = reporter.calls
    launched = calls.index(("RunInstances", new))
    awaited = calls.index(("GetParameter", naming.gateway_key_parameter("demo", E, new)))
    moved = calls.index(("AssociateAddress", new))
    routed = next(i for i, (name, _) in enumerate(calls) if name == "ReplaceRoute")
    published = next(i for i, (name, value) in enumerate(calls)
                     if name == "PutParameter" and value.startswith("{") and
                     json.loads(value)["sites"][1].get("gateway") == new)  # sorted by site: us-east-1 second
    retired = calls.index(("TerminateInstances", str([old])))
    assert launched < awaited < moved < routed < published < retired, calls
    routes = aws.client("ec2", region_name=E).describe_route_tables(RouteTableIds=[link.main_table])
    eni = aws.client("ec2", region_name=E).describe_instances(InstanceIds=[new])["Reservations"][0]["Instances"][0][
        "NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert {r.get("NetworkInterfaceId") for r in routes["RouteTables"][0]["Routes"]
            if r["DestinationCidrBlock"] == "10.20.0.0/16"} == {eni}
    # pinned to the new build; the old wheelhouse went with the old gateway
    assert gateways(aws, E)[new][naming.TAG_PACKAGE] == NEWER.key and wheels(aws, E) == [NEWER.key]
    ssm = aws.client("ssm", region_name=W)
    doc = json.loads(ssm.get_parameter(Name=naming.membership_parameter("demo"))["Parameter"]["Value"])
    assert {s["site"]: s["gateway"] for s in doc["sites"]} == {E: new, W: next(iter(gateways(aws, W)))}
    east_ssm = aws.client("ssm", region_name=E)
    records = east_ssm.get_parameters_by_path(Path=naming.gateways_prefix("demo", E), Recursive=True)["Parameters"]
    assert [p["Name"] for p in records] == [naming.gateway_key_parameter("demo", E, new)]  # the old key is gone
    assert plan_link(Target(), SPEC) == []


def test_a_successor_that_never_reports_ready_fails_the_run_and_leaves_the_site_served(
        aws, link) -> None:  # type: ignore[no-untyped-def]
    (old,) = gateways(aws, E)
    with pytest.raises(CloudError, match="did not report ready within 5 s") as err:
        up_link(Target(), replace(SPEC, instance_type="t3.small"), yes,
                options=replace(FAST, hooks=ReadyReporter(aws, ready=False).hooks()))
    assert f"{old} still serves the site" in err.value.message and "get-console-output" in (err.value.fix or "")
    assert eip_holder(aws, E) == old and old in gateways(aws, E) and len(gateways(aws, E)) == 2


def test_a_gateway_that_never_became_ready_is_replaced_once_overdue(aws) -> None:  # type: ignore[no-untyped-def]
    make_vpc(aws, E, "10.10.0.0/16", tables=1)
    make_vpc(aws, W, "10.20.0.0/16", tables=1)
    up_link(Target(), SPEC, yes, options=replace(FAST, hooks=ReadyReporter(aws, ready=False).hooks()))
    (broken,) = gateways(aws, E)
    # within the deadline it is still booting: kept
    assert up_link(Target(), SPEC, yes, options=FAST) == []
    # past it (the test's deadline: 0 s), never ready: replaced, make before break
    reporter = ReadyReporter(aws)
    assert up_link(Target(), SPEC, yes, options=replace(FAST, unready_after=0.0, hooks=reporter.hooks()))
    (new,) = gateways(aws, E)
    assert new != broken and eip_holder(aws, E) == new
    assert reporter.calls.index(("AssociateAddress", new)) < reporter.calls.index(
        ("TerminateInstances", str([broken])))
    # and a ready one is never replaced, however old
    assert up_link(Target(), SPEC, yes, options=replace(FAST, unready_after=0.0)) == []
