"""AWS's API is eventually consistent: right after a create, a call naming the new resource can answer NotFound.
The controller retries those codes with bounded backoff, and an instance that dies while starting fails the run
at once with its reason, not after the timeout."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from linker.control.apply import calls
from linker.control.aws import Clients, Target
from linker.control.operations import Options, up_link
from linker.errors import CloudError
from linker.spec import LinkSpec
from tests.control.cloud import inventory, make_vpc

REGIONS = ("us-east-1", "eu-west-1")
# the call that follows each create, and the code AWS answers while the new resource is not visible to it
AFTER_CREATE = {"AssociateAddress": "InvalidAllocationID.NotFound",
                "AuthorizeSecurityGroupIngress": "InvalidGroup.NotFound",
                "AuthorizeSecurityGroupEgress": "InvalidGroup.NotFound",
                "ModifyInstanceAttribute": "InvalidInstanceID.NotFound",
                "CreateRoute": "InvalidRouteTableID.NotFound"}


class NotYetVisible:
    """A before-call hook: the first ``times`` calls of each AFTER_CREATE operation fail with its NotFound code."""

    def __init__(self, times: int) -> None:
        self.times, self.seen, self._lock = times, {}, threading.Lock()  # type: dict

    def __call__(self, model: Any, **_: Any) -> None:
        code = AFTER_CREATE.get(model.name)
        if code is None:
            return
        with self._lock:
            n = self.seen[model.name] = self.seen.get(model.name, 0) + 1
        if n <= self.times:
            raise ClientError({"Error": {"Code": code, "Message": "not visible yet (injected)"}}, model.name)


def run_up(session: Any, hook: Any, timeout: float = 30.0) -> None:
    clients = Clients(Target(), hooks=(("before-call.*.*", hook),), session=session)
    up_link(Target(), LinkSpec("settle", REGIONS), lambda _: True,
            options=Options(poll=0.0, timeout=timeout, max_workers=1, clients=clients))


@pytest.mark.parametrize("times", [1, 2])
def test_a_resource_not_yet_visible_after_its_create_is_waited_for(aws: Any, times: int) -> None:
    for region, cidr in zip(REGIONS, ("10.10.0.0/16", "10.20.0.0/16"), strict=True):
        make_vpc(aws, region, cidr, tables=1)
    hook = NotYetVisible(times)
    run_up(aws, hook)
    assert set(hook.seen) == set(AFTER_CREATE) and all(n > times for n in hook.seen.values())
    inv = inventory(aws, "settle", list(REGIONS))
    assert all(inv[r]["instances"] for r in REGIONS)


def test_a_resource_that_never_appears_fails_after_bounded_retries(aws: Any) -> None:
    make_vpc(aws, REGIONS[0], "10.10.0.0/16", tables=1)
    make_vpc(aws, REGIONS[1], "10.20.0.0/16", tables=1)
    hook = NotYetVisible(times=100)
    with pytest.raises(CloudError, match="NotFound"):
        run_up(aws, hook)
    # in each region: tried, retried after each delay, then the error stands (the phase finishes both regions)
    assert hook.seen == {"AuthorizeSecurityGroupIngress": len(REGIONS) * (len(calls.SETTLE_DELAYS) + 1)}


def test_an_instance_terminated_while_starting_fails_at_once_with_its_reason(aws: Any) -> None:
    make_vpc(aws, REGIONS[0], "10.10.0.0/16", tables=1)
    make_vpc(aws, REGIONS[1], "10.20.0.0/16", tables=1)

    def kill_new_instances(http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
        if model.name == "RunInstances":
            for i in parsed.get("Instances", []):  # as EC2 does when, say, the volume's KMS key is not usable
                boto3.session.Session().client("ec2", region_name=i["Placement"]["AvailabilityZone"][:-1]) \
                    .terminate_instances(InstanceIds=[i["InstanceId"]])

    clients = Clients(Target(), hooks=(("after-call.ec2.RunInstances", kill_new_instances),), session=aws)
    started = time.monotonic()
    with pytest.raises(CloudError, match="stopped while starting") as err:
        up_link(Target(), LinkSpec("doomed", REGIONS), lambda _: True,
                options=Options(poll=0.05, timeout=120.0, max_workers=1, clients=clients))
    assert time.monotonic() - started < 60  # not the 120 s timeout
    assert "i-" in str(err.value) and err.value.fix and "linker up" in err.value.fix
