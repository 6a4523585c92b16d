"""The compound timer events that every packet path calls: what each arms and disarms, and when jitter is drawn."""

from __future__ import annotations

import random

from linker.wg import noise, timers
from linker.wg.constants import KEEPALIVE_TIMEOUT, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX
from linker.wg.keys import generate_private_key, public_key_of
from linker.wg.peer import Peer


def peer(keepalive: int = 0) -> Peer:
    rand = random.Random(5)
    me = noise.Identity.from_private(generate_private_key(rand.randbytes))
    p = Peer(noise.PeerSecrets.derive(me, public_key_of(generate_private_key(rand.randbytes)), None))
    p.persistent_keepalive = keepalive
    return p


class CountingRng:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, n: int) -> bytes:
        self.calls += 1
        return bytes([0xFF]) * n


def test_after_send_arms_the_new_handshake_timer_for_data_only_and_once_with_the_peers_jitter() -> None:
    p = peer(keepalive=25)
    p.new_handshake_jitter = 0.25
    p.t_send_keepalive = 99.0
    timers.after_send(p, 10.0, False)  # a keepalive or a handshake message
    assert p.t_new_handshake is None
    assert p.t_send_keepalive is None and p.t_persistent_keepalive == 35.0
    timers.after_send(p, 11.0, True)
    assert p.t_new_handshake == 11.0 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + 0.25
    timers.after_send(p, 12.0, True)
    assert p.t_new_handshake == 11.0 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + 0.25  # not re-armed while it runs


def test_each_new_handshake_timer_that_fires_has_a_fresh_jitter_and_arming_one_draws_none() -> None:
    from tests.pair.harness import Pair

    pair = Pair(seed=3)
    pair.send("a")  # handshake, then a's data
    peer_a = pair.peer("a")
    first = peer_a.new_handshake_jitter
    assert 0 <= first < REKEY_TIMEOUT_JITTER_MAX
    draws: list[float] = []

    class Counted(timers.Jitter):
        def draw(self) -> float:
            draws.append(value := super().draw())
            return value

    pair.a.jitter = Counted(CountingRng())
    for _ in range(20):  # data back and forth: the timer is armed and disarmed, nothing is drawn
        pair.send("a")
        pair.send("b")
    assert not draws and peer_a.new_handshake_jitter == first
    pair.send("a", b"no answer")
    armed = peer_a.t_new_handshake
    assert armed == pair.clock.now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + first
    pair.b.remove_peer(pair.peer("b").public_key)  # b goes away: a's timer fires
    pair.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + 1)
    assert peer_a.new_handshake_jitter in draws and 0 <= peer_a.new_handshake_jitter < REKEY_TIMEOUT_JITTER_MAX


def test_after_receive_disarms_the_new_handshake_timer_and_owes_a_keepalive_for_data() -> None:
    p = peer()
    p.t_new_handshake = 50.0
    timers.after_receive(p, 20.0, False)
    assert p.t_new_handshake is None and p.t_send_keepalive is None and p.t_persistent_keepalive is None
    timers.after_receive(p, 21.0, True)
    assert p.t_send_keepalive == 21.0 + KEEPALIVE_TIMEOUT and not p.need_another_keepalive
    timers.after_receive(p, 22.0, True)  # already owed: one more after it
    assert p.t_send_keepalive == 21.0 + KEEPALIVE_TIMEOUT and p.need_another_keepalive


def test_jitter_draws_from_a_pool() -> None:
    rng = CountingRng()
    jitter = timers.Jitter(rng)
    draws = [jitter.draw() for _ in range(timers.JITTER_POOL // 2 + 1)]
    assert rng.calls == 2 and all(0 <= d < REKEY_TIMEOUT_JITTER_MAX for d in draws)


def test_the_lone_horizon_is_the_shortest_persistent_keepalive_and_lone_packets_keep_to_it() -> None:
    """A persistent keepalive of 2 s re-armed by each lone packet would come before the keepalive timeout: the
    horizon follows the shortest one, and back when it is turned off or its peer removed."""
    from tests.pair.harness import Pair

    pair = Pair(seed=4)
    assert pair.a.lone_horizon == KEEPALIVE_TIMEOUT
    pair.run("a", pair.a.set_peer(pair.peer("a").public_key, pair.clock.now, persistent_keepalive=2))
    assert pair.a.lone_horizon == 2.0
    for _ in range(10):  # the harness checks every lone packet against the horizon
        pair.send("a")
        pair.send("b")
        pair.advance(0.5)
    assert pair.peer("a").t_persistent_keepalive is not None and pair.keepalives("a")
    pair.run("a", pair.a.set_peer(pair.peer("a").public_key, pair.clock.now, persistent_keepalive=0))
    assert pair.a.lone_horizon == KEEPALIVE_TIMEOUT
    pair.run("a", pair.a.set_peer(pair.peer("a").public_key, pair.clock.now, persistent_keepalive=7))
    assert pair.a.lone_horizon == 7.0
    pair.a.remove_peer(pair.peer("a").public_key)
    assert pair.a.lone_horizon == KEEPALIVE_TIMEOUT
