"""Fault injection: for every mutating AWS call k of a two-region ``up``, fail call k (an injected ClientError, or
the process dying there: call k and every later call fail, the lock stays held), then recover.

From each partial state: re-running ``up`` gives the end state of a clean run (no duplicates), and ``down``
leaves no tagged resource and no added route, and leaves a foreign route alone.
Sequential (one worker), so that call k is the same call in every run.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from linker.control.aws import READ_PREFIXES, Clients, Target
from linker.control.operations import Options, down_link, up_link
from linker.errors import CloudError, LockHeldError
from linker.spec import LinkSpec
from tests.control.cloud import inventory, make_vpc

LINK = "faulty"
REGIONS = ("us-east-1", "eu-west-1")
FOREIGN = "192.168.77.0/24"


class Died(BaseException):
    """The process died: not an Exception, so nothing in linker handles it."""


class Injector:
    """A botocore before-call hook that counts mutating calls and fails call ``k`` (and later ones if dying).

    Registered once on the module's clients (building clients is the slow part of a run) and armed per run."""

    def __init__(self) -> None:
        self.k: int | None = None
        self.die, self.count, self.dead = False, 0, False
        self.names: list[str] = []  # the mutating calls of the last run, in order
        self._lock = threading.Lock()

    def arm(self, k: int | None = None, die: bool = False) -> Injector:
        self.k, self.die, self.count, self.dead = k, die, 0, False
        self.names = []
        return self

    def __call__(self, model: Any, **_: Any) -> None:
        if model.name.startswith(READ_PREFIXES):
            if self.dead:
                raise Died(model.name)
            return
        with self._lock:
            n, self.count = self.count, self.count + 1
            self.names.append(model.name)
        if self.dead or (self.k is not None and n == self.k):
            if self.die:
                self.dead = True
                raise Died(model.name)
            raise ClientError({"Error": {"Code": "InternalError", "Message": f"injected at call {n}"}}, model.name)


INJECTOR = Injector()
CLIENTS: list[Clients] = []  # one set of clients per test, with INJECTOR registered


def options(k: int | None = None, die: bool = False, force: bool = False) -> Options:
    INJECTOR.arm(k, die)
    return Options(force_unlock=force, max_workers=1, poll=0.0, timeout=5.0, clients=CLIENTS[0])


def shape(inv: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between two runs (ids differ)."""
    return {k: ({**v, "route_tags": len(v["route_tags"]), "eni_routes": len(v["eni_routes"])} if isinstance(v, dict)
                else v) for k, v in inv.items()}


def empty(inv: dict[str, Any]) -> bool:
    return not inv["roles"] and not inv["profiles"] and not inv["buckets"] and all(
        not any(inv[r].values()) for r in REGIONS)


@pytest.fixture
def clean():  # type: ignore[no-untyped-def]
    """A fresh cloud per test (moto keeps terminated instances, which slows it down as they pile up); within a
    test each case ends with the link gone, so the cloud is reused."""
    import boto3
    from moto import mock_aws

    from tests.control.conftest import MOTO_CONFIG
    with mock_aws(config=MOTO_CONFIG):
        s = boto3.session.Session()
        CLIENTS[:] = [Clients(Target(), hooks=(("before-call.*.*", INJECTOR),), session=s)]
        a = make_vpc(s, REGIONS[0], "10.10.0.0/16", tables=1)
        make_vpc(s, REGIONS[1], "10.20.0.0/16", tables=1)
        ec2 = s.client("ec2", region_name=REGIONS[0])
        igw = ec2.describe_internet_gateways()["InternetGateways"][0]["InternetGatewayId"]
        ec2.create_route(RouteTableId=a.public_table, DestinationCidrBlock=FOREIGN, GatewayId=igw)
        up_link(Target(), SPEC, yes, options=options())
        total = INJECTOR.count
        calls = list(INJECTOR.names)
        reference = shape(inventory(s, LINK, list(REGIONS)))
        down_link(Target(), LINK, yes, regions=REGIONS, options=options())
        assert empty(inventory(s, LINK, list(REGIONS)))
        yield s, a, total, reference, calls


SPEC = LinkSpec(LINK, REGIONS)


def yes(_changes: object) -> bool:
    return True


def foreign_route_intact(s: Any, table: str) -> bool:
    ec2 = s.client("ec2", region_name=REGIONS[0])
    routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
    return any(r.get("DestinationCidrBlock") == FOREIGN and r.get("GatewayId", "").startswith("igw-")
               for r in routes)


def fail_at(k: int, die: bool) -> None:
    """Run ``up`` with call ``k`` failing; the run must fail loudly, never half-silently."""
    if die:
        with pytest.raises(Died):
            up_link(Target(), SPEC, yes, options=options(k, die=True))
    else:
        with pytest.raises(CloudError, match="injected"):
            up_link(Target(), SPEC, yes, options=options(k))


def fault_points(calls: list[str], die: bool) -> list[int]:
    """Where to fail. Every call with LINKER_FAULTS=all (on demand: the suite's longest test, about 3 minutes).
    Otherwise, for an error, the first and the last call of each operation (a run fails between two calls of one
    kind as it fails before the first or after the last of them: what differs is how much of the kind is made);
    for a death (the costlier case: each needs a forced recovery) the first call of each operation."""
    if os.environ.get("LINKER_FAULTS") == "all":
        return list(range(len(calls)))
    first = {name: k for k, name in reversed(list(enumerate(calls)))}
    if die:
        return sorted(first.values())
    last = {name: k for k, name in enumerate(calls)}
    return sorted(set(first.values()) | set(last.values()))


@pytest.mark.parametrize("die", [False, True], ids=["error", "death"])
def test_every_mutating_call_failing_then_up_or_down_recovers(clean, die: bool) -> None:  # type: ignore[no-untyped-def]
    s, site, total, reference, calls = clean
    assert total > 20  # the two-region up makes this many mutating calls: the loop covers each
    # the last calls release the locks (the first up of a link locks each of its regions, control/home.py): tested
    # apart (a warning, the lease ends it)
    for k in fault_points(calls[:total - len(REGIONS)], die):
        # a dead run leaves its lock (unless it died taking it): recovery needs --force-unlock
        fail_at(k, die)
        up_link(Target(), SPEC, yes, options=options(force=die))
        assert shape(inventory(s, LINK, list(REGIONS))) == reference, f"up after call {k}"
        down_link(Target(), LINK, yes, regions=REGIONS, options=options())
        assert empty(inventory(s, LINK, list(REGIONS))), f"down after up after call {k}"

        fail_at(k, die)
        down_link(Target(), LINK, yes, regions=REGIONS, options=options(force=die))
        assert empty(inventory(s, LINK, list(REGIONS))), f"down after call {k}"
        assert foreign_route_intact(s, site.public_table)


def test_failing_to_release_the_lock_is_a_warning_and_the_lock_then_blocks(clean, caplog) -> None:  # type: ignore[no-untyped-def]
    s, _site, total, reference, _calls = clean
    logging.getLogger("linker").propagate = True  # the CLI's log setup (other tests) turns it off
    up_link(Target(), SPEC, yes, options=options(total - 1))  # the changes are made: no error
    after = shape(inventory(s, LINK, list(REGIONS)))
    # the last lock released: locks are taken in sorted order and released in reverse
    assert "/linker/faulty/lock" in after["eu-west-1"]["params"]
    after["eu-west-1"]["params"].remove("/linker/faulty/lock")
    assert after == reference
    assert "could not release the lock" in caplog.text
    with pytest.raises(LockHeldError):
        down_link(Target(), LINK, yes, regions=REGIONS, options=options())
    down_link(Target(), LINK, yes, regions=REGIONS, options=options(force=True))
    assert empty(inventory(s, LINK, list(REGIONS)))
