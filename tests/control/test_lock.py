"""The link's lock against moto: one home region whatever regions a run names, the race of two first runs, leases
judged by AWS's clock (a client an hour fast or slow), takeover of an expired lock, renewal."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from linker import naming
from linker.control import lock as lock_mod
from linker.control.aws import Clients, Target
from linker.control.home import choose_home, lock_regions
from linker.control.lock import acquire, lock_link, read_holder
from linker.control.operations import Options, down_link, up_link
from linker.errors import LockHeldError
from linker.spec import LinkSpec
from tests.control.cloud import inventory, make_vpc

E, W, S = "us-east-1", "eu-west-1", "ap-south-1"
FAST = Options(poll=0.0, timeout=5.0)
LINK = "locks"


def yes(_changes: object) -> bool:
    return True


def record_home(session, link: str, home: str, *regions: str) -> None:  # type: ignore[no-untyped-def]
    for region in regions:
        session.client("ssm", region_name=region).put_parameter(
            Name=naming.home_parameter(link), Value=home, Type="String", Overwrite=True)


def params(session, region: str, link: str = LINK) -> list[str]:  # type: ignore[no-untyped-def]
    ssm = session.client("ssm", region_name=region)
    return sorted(p["Name"] for p in ssm.get_parameters_by_path(Path=naming.parameter_prefix(link),
                                                                 Recursive=True)["Parameters"])


@pytest.fixture
def skewed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """This machine's clock, off by the offset the test sets (moto's clock, AWS's, is not affected)."""
    offset = [0.0]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    yield offset


# --- the home region ---

def test_the_home_is_the_recorded_one_or_for_a_new_link_the_first_named() -> None:
    assert choose_home({}, [W, E]) == W
    assert choose_home({W: None, E: None}, [W, E]) == W
    assert choose_home({W: E, S: None}, [W, S]) == E
    assert choose_home({W: E, S: S}, [W, S]) == S  # two links of one name joined: the first in sorted order
    assert lock_regions({}, [W, E]) == (W, E)  # a new link: every region, sorted
    assert lock_regions({W: E, E: E}, [W, E]) == (E,)
    assert lock_regions({W: E, S: None}, [W, S]) == (S, E)  # a region joining: its lock too


def test_up_a_b_then_up_b_c_and_down_take_the_lock_of_one_home(aws) -> None:  # type: ignore[no-untyped-def]
    for region, cidr in ((E, "10.10.0.0/16"), (W, "10.20.0.0/16"), (S, "10.30.0.0/16")):
        make_vpc(aws, region, cidr, tables=1)
    assert up_link(Target(), LinkSpec(LINK, (E, W)), yes, options=FAST)
    assert naming.home_parameter(LINK) in params(aws, E) and naming.home_parameter(LINK) in params(aws, W)
    clients = Clients(Target())
    for named in ([E], [W], [W, E], [W, S]):  # whatever a run names, the lock is the home's (us-east-1)
        held = lock_link(clients, LINK, named, "probe")
        assert held.home == E and E in held.regions
        held.release()

    other = acquire(clients, LINK, E, "linker up (another run)")  # a run holds the home's lock
    for run in (lambda: up_link(Target(), LinkSpec(LINK, (W, S)), yes, options=FAST),
                lambda: up_link(Target(), LinkSpec(LINK, (E, W)), yes, options=FAST),
                lambda: down_link(Target(), LINK, yes, options=FAST)):
        with pytest.raises(LockHeldError, match="another run"):
            run()
    other.release()

    assert up_link(Target(), LinkSpec(LINK, (W, S)), yes, options=FAST)  # us-east-1 leaves the link
    inv = inventory(aws, LINK, [E, W, S])
    assert inv[E]["instances"] == 0 and inv[S]["instances"] == inv[W]["instances"] == 1
    # the home stays where every record points: its record is kept, nothing else
    assert params(aws, E) == [naming.home_parameter(LINK)]
    assert aws.client("ssm", region_name=S).get_parameter(Name=naming.home_parameter(LINK))["Parameter"][
        "Value"] == E
    held = lock_link(clients, LINK, [S], "probe")
    assert held.regions == (E,)
    held.release()
    assert up_link(Target(), LinkSpec(LINK, (W, S)), yes, options=FAST) == []  # settled: nothing to do

    assert down_link(Target(), LINK, yes, options=FAST)
    assert params(aws, E) == params(aws, W) == params(aws, S) == []  # the home records too, last


def test_two_first_runs_of_a_new_link_that_share_a_region_cannot_both_hold_it(aws) -> None:  # type: ignore[no-untyped-def]
    clients = Clients(Target())
    first = lock_link(clients, LINK, [E, W], "linker up us-east-1 eu-west-1")
    assert first.regions == (W, E) and first.home == E
    with pytest.raises(LockHeldError, match="us-east-1 eu-west-1"):
        lock_link(clients, LINK, [W, S], "linker up eu-west-1 ap-south-1")
    assert params(aws, S) == []  # the loser let go of what it took
    first.release()

    # at the same instant, many times: exactly one of the two runs holds the link each time
    def run(named: list[str], barrier: threading.Barrier, won: list) -> None:
        barrier.wait()
        try:
            held = lock_link(clients, LINK, named, f"linker up {' '.join(named)}")
        except LockHeldError:
            barrier.wait()
            return
        won.append(held)
        barrier.wait()  # hold until the other run tried
        held.release()

    for _round in range(5):
        barrier, won = threading.Barrier(2), []  # type: ignore[var-annotated]
        threads = [threading.Thread(target=run, args=(named, barrier, won)) for named in ([E, W], [W, S])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1
    assert params(aws, E) == params(aws, W) == params(aws, S) == []


def test_a_run_that_read_no_home_before_the_first_run_recorded_one_takes_the_winners_home(
        aws, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    clients = Clients(Target())
    real, calls = lock_mod.read_records, []

    def late(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:  # its first read happened before the winner recorded its home
            return {r: (None, False) for r in args[2]}
        return real(*args, **kwargs)

    record_home(aws, LINK, E, E, W)  # the winner (up us-east-1 eu-west-1) recorded its home and finished
    monkeypatch.setattr(lock_mod, "read_records", late)
    held = lock_link(clients, LINK, [W, S], "linker up eu-west-1 ap-south-1")
    assert held.home == E and held.regions == (S, E)
    held.release()
    assert params(aws, W) == [naming.home_parameter(LINK)] and params(aws, S) == []


def test_a_lock_left_in_another_region_is_refused_while_live_broken_when_expired(aws) -> None:  # type: ignore[no-untyped-def]
    clients = Clients(Target())
    record_home(aws, LINK, E, E, W)
    left = acquire(clients, LINK, W, "linker up (died)")  # the first run died after recording the home
    with pytest.raises(LockHeldError, match="died"):
        lock_link(clients, LINK, [E, W], "linker down")
    assert params(aws, E) == [naming.home_parameter(LINK)]
    lock_link(clients, LINK, [E, W], "linker down", force=True).release()
    assert read_holder(aws.client("ssm", region_name=W), naming.lock_parameter(LINK)) is None
    assert left.owner


# --- leases on AWS's clock ---

@pytest.mark.parametrize("offset", [3600.0, -3600.0], ids=["an hour fast", "an hour slow"])
def test_a_lock_taken_by_a_client_whose_clock_is_off_is_held_for_its_lease(aws, skewed, offset: float) -> None:  # type: ignore[no-untyped-def]
    clients = Clients(Target())
    skewed[0] = offset
    holder = acquire(clients, LINK, E, "linker up (skewed clock)")
    skewed[0] = 0.0
    with pytest.raises(LockHeldError) as err:
        acquire(clients, LINK, E, "linker down")
    message = err.value.message
    assert "locked by `linker up (skewed clock)`" in message and "until" in message and "AWS's clock" in message
    until = time.strptime(message.split("until ")[1][:8], "%H:%M:%S")
    expected = time.gmtime(time.time() + lock_mod.DEFAULT_LEASE)  # AWS's time plus the lease, not the client's
    assert abs((until.tm_hour * 60 + until.tm_min) - (expected.tm_hour * 60 + expected.tm_min)) % 1440 <= 1
    skewed[0] = -offset  # a contender whose clock is off the other way: still held
    with pytest.raises(LockHeldError):
        acquire(clients, LINK, E, "linker down")
    holder.release()
    assert params(aws, E) == []


def test_an_expired_lock_is_taken_over_whatever_the_clients_clock(aws, skewed, caplog) -> None:  # type: ignore[no-untyped-def]
    clients = Clients(Target())
    skewed[0] = 3600.0  # the crashed run's clock was an hour fast: its "expires" said 1 h 1 s from now
    acquire(clients, LINK, E, "linker up (crashed)", lease=1.0)
    skewed[0] = -3600.0  # and ours is an hour slow
    time.sleep(2.1)  # AWS's clock (the Date of its replies) passes the lease
    taken = acquire(clients, LINK, E, "linker up")
    assert "lease expired" in caplog.text
    holder = read_holder(aws.client("ssm", region_name=E), naming.lock_parameter(LINK))
    assert holder is not None and holder.owner == taken.owner and holder.command == "linker up"
    taken.release()


def test_a_lock_of_an_older_linker_is_read_by_its_last_modified_date(aws) -> None:  # type: ignore[no-untyped-def]
    ssm = aws.client("ssm", region_name=E)
    old = {"owner": "x", "host": "h", "pid": 1, "command": "linker up (older)", "acquired": 0, "expires": 1}
    ssm.put_parameter(Name=naming.lock_parameter(LINK), Value=json.dumps(old), Type="String")
    with pytest.raises(LockHeldError, match="older"):  # its own "expires" (its clock) is not trusted
        acquire(Clients(Target()), LINK, E, "linker up")


def test_renewal_keeps_a_long_runs_lock_alive_and_stops_on_release(aws) -> None:  # type: ignore[no-untyped-def]
    clients = Clients(Target())
    held = lock_link(clients, LINK, [E], "linker up (long)", lease=1.0, renew_every=0.2)
    time.sleep(2.5)  # more than twice the lease
    with pytest.raises(LockHeldError, match="long"):
        acquire(clients, LINK, E, "linker up")
    assert held.lost == ()
    held.release()
    time.sleep(0.5)  # no renewal recreates it
    assert params(aws, E) == []

    unrenewed = lock_link(clients, LINK, [E], "linker up (stuck)", lease=1.0, renew_every=60.0)
    time.sleep(2.5)
    taken = acquire(clients, LINK, E, "linker up")  # without renewal the lease ran out
    unrenewed.release()  # no longer ours: the new holder's lock stays
    assert read_holder(aws.client("ssm", region_name=E), naming.lock_parameter(LINK)).owner == taken.owner
    taken.release()


def test_a_renewal_that_finds_the_lock_taken_over_says_so_and_leaves_it(aws, caplog) -> None:  # type: ignore[no-untyped-def]
    clients = Clients(Target())
    held = lock_link(clients, LINK, [E], "linker up (slow)", lease=60.0, renew_every=0.2)
    other = acquire(clients, LINK, E, "linker up --force-unlock", force=True)
    time.sleep(0.6)
    assert held.lost == (E,) and "taken over" in caplog.text
    held.release()
    assert read_holder(aws.client("ssm", region_name=E), naming.lock_parameter(LINK)).owner == other.owner
    other.release()
