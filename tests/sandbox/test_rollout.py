"""A gateway replaced under traffic in the sandbox: make before break (linker.control.rollout), end to end.

`up`, then `up` with another instance type while a ping runs between the workload hosts: the new gateway boots
its real user-data beside the old one, and only once it reported ready do the EIP and routes move; traffic
resumes within one agent poll and a handshake, the new instance owns the EIP and the routes, the old one is
terminated and no record of it is left.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import boto3
import pytest

from linker import naming
from linker.sandbox.layout import Layout
from tests.sandbox.test_e2e import UP_TIMEOUT, Cli, cli  # noqa: F401 (cli: the fixture)

pytestmark = [pytest.mark.netns, pytest.mark.slow]
E, W = "us-east-1", "eu-west-1"
# one agent poll (10 s) + a handshake retried once (REKEY_TIMEOUT 5 s) + the sandbox's slack on 2 cores
MAX_GAP = 30.0


def replies(output: str) -> list[float]:
    """The times (ping -D) of the echo replies in ``output``."""
    return [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from .* icmp_seq=", output, re.M)]


def test_a_replaced_gateway_takes_over_without_an_outage_longer_than_a_poll(cli: Cli) -> None:  # noqa: F811
    first = cli.json("up", E, W, "--sandbox", "--yes", "--timeout", "180", timeout=UP_TIMEOUT)
    assert first["sandbox"]["proof"][0]["transfer"]["verified"]
    old = cli.gateway(W)["instance"]

    # a count, not a deadline (-w): with one, ping stops at the first ICMP error, and one may come while the
    # daemons reconfigure; SIGINT stops it
    ping = cli.popen("sandbox", "exec", E, "--", "ping", "-D", "-n", "-i", "0.2", "-W", "1", "-c", "3000",
                     "10.20.2.10")
    try:
        time.sleep(3)
        started = time.time()
        doc = cli.json("up", E, W, "--sandbox", "--yes", "--instance-type", "t3.small", "--timeout", "180",
                       timeout=UP_TIMEOUT)
        applied = time.time()
        time.sleep(5)
    finally:
        ping.send_signal(signal.SIGINT)
        try:
            out, _ = ping.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            ping.kill()
            out, _ = ping.communicate()
    kinds = [(c["region"], c["action"], c["kind"]) for c in doc["changes"]]
    assert kinds.index((W, "update", "instance-ready")) < kinds.index((W, "update", "eip-association")) < kinds.index(
        (W, "delete", "instance"))
    assert doc["sandbox"]["proof"][0]["transfer"]["verified"]

    times = replies(out)
    assert times and times[0] < started + 1 and times[-1] > applied, out[-2000:]  # before, through and after
    gaps = [b - a for a, b in zip([started, *times], [*times, applied], strict=True)]
    print(f"replacement under traffic: longest gap between echo replies {max(gaps):.1f} s, "
          f"{len(times)} replies, up took {applied - started:.0f} s")
    assert max(gaps) < MAX_GAP, f"the longest gap in traffic was {max(gaps):.1f} s"

    ec2 = cli.ec2(W)
    flt = [{"Name": f"tag:{naming.TAG_LINK}", "Values": ["default"]}]
    new = ec2.describe_addresses(Filters=flt)["Addresses"][0]["InstanceId"]
    assert new != old
    deadline = time.monotonic() + 60  # the sandbox removes a terminated instance's host on its next sweep
    while any(h["instance"] == old for h in cli.hosts()):
        assert time.monotonic() < deadline, "the old gateway's host is still there"
        time.sleep(2)
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(Filters=flt)["Reservations"]
              for i in r["Instances"]}
    assert states[new] == "running" and states[old] in ("shutting-down", "terminated")
    eni = next(i["NetworkInterfaces"][0]["NetworkInterfaceId"] for r in ec2.describe_instances(
        InstanceIds=[new])["Reservations"] for i in r["Instances"])
    targets = {r.get("NetworkInterfaceId") for t in ec2.describe_route_tables()["RouteTables"] for r in t["Routes"]
               if r.get("DestinationCidrBlock") == "10.10.0.0/16"}
    assert targets == {eni}
    state = Layout(cli.root).read_state() or {}
    ssm = boto3.session.Session(aws_access_key_id=state["access_key"], aws_secret_access_key="sandbox").client(  # noqa: S106
        "ssm", region_name=W, endpoint_url=state["endpoint"])
    records = ssm.get_parameters_by_path(Path=naming.gateways_prefix("default", W), Recursive=True)["Parameters"]
    assert [p["Name"] for p in records] == [naming.gateway_key_parameter("default", W, new)]
    assert cli.ping(E, "10.20.2.10") and cli.ping(W, "10.10.2.10")
