"""``Device.next_deadline``: when the daemon's loop must next tick, read from the peers' timers with a fake clock.

The loop sleeps until this deadline instead of ticking ten times a second, so it must never be later than a timer
that ``tick`` would run, and ``tick`` must run each timer at its deadline (not a step later)."""

from __future__ import annotations

from linker.wg.constants import (
    KEEPALIVE_TIMEOUT,
    MESSAGE_INITIATION,
    REJECT_AFTER_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)
from tests.pair.harness import Pair


def kinds(actions: list) -> list[int]:
    return [a.data[0] for a in actions]


def test_no_timer_armed_no_deadline() -> None:
    p = Pair(seed=3)
    assert p.a.next_deadline() is None and p.b.next_deadline() is None  # peers configured, nothing sent yet
    assert p.a.tick(p.clock.now + 1e6) == []


def test_a_handshake_retry_is_due_at_its_deadline_not_before() -> None:
    p = Pair(seed=3)
    p.drop = lambda sender, data: True  # b never hears a
    p.send("a")
    start = p.clock.now
    due = p.a.next_deadline()
    assert due is not None and start + REKEY_TIMEOUT <= due < start + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX
    assert due == p.peer("a").t_retransmit_handshake
    assert p.a.tick(due - 1e-6) == []
    assert kinds(p.a.tick(due)) == [MESSAGE_INITIATION]  # retried on time
    later = p.a.next_deadline()
    assert later is not None and later >= due + REKEY_TIMEOUT  # the next retry, armed by this one


def test_the_passive_keepalive_is_the_receivers_next_deadline() -> None:
    p = Pair(seed=4)
    p.send("a")  # handshake, then the packet
    now = p.clock.now
    assert p.b.next_deadline() == now + KEEPALIVE_TIMEOUT  # b owes a keepalive if it says nothing
    sent = len(p.keepalives("b"))
    p.clock.now = now + KEEPALIVE_TIMEOUT
    p.run("b", p.b.tick(p.clock.now))
    assert len(p.keepalives("b")) == sent + 1


def test_the_deadline_follows_persistent_keepalive_and_key_zeroing_to_none() -> None:
    p = Pair(seed=5, keepalive_a=25)
    p.send("a")
    assert p.a.next_deadline() == min(p.peer("a").t_persistent_keepalive, p.peer("a").t_new_handshake or 1e18)
    quiet = Pair(seed=6)
    quiet.send("a")
    quiet.send("b")  # a answered: no new-handshake timer on a, a keepalive owed by a
    quiet.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + 1)  # the keepalives go; then only key zeroing is armed
    zero = quiet.peer("a").t_zero_key_material
    assert zero is not None and quiet.a.next_deadline() == zero
    assert zero == quiet.peer("a").current.created + REJECT_AFTER_TIME * 3  # type: ignore[union-attr]
    quiet.clock.now = zero
    quiet.run("a", quiet.a.tick(zero))
    assert quiet.peer("a").current is None and quiet.a.next_deadline() is None  # keys erased, nothing left to do


def test_removing_a_peer_removes_its_deadlines() -> None:
    p = Pair(seed=7)
    p.send("a")
    assert p.a.next_deadline() is not None
    p.a.remove_peer(p.b.public_key)
    assert p.a.next_deadline() is None
