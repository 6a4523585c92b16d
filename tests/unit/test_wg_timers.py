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


def test_after_send_arms_the_new_handshake_timer_for_data_only_and_once() -> None:
    rng = CountingRng()
    jitter = timers.Jitter(rng)
    p = peer(keepalive=25)
    p.t_send_keepalive = 99.0
    timers.after_send(p, 10.0, False, jitter)  # a keepalive or a handshake message
    assert p.t_new_handshake is None and rng.calls == 0  # no jitter drawn for a timer not armed
    assert p.t_send_keepalive is None and p.t_persistent_keepalive == 35.0
    timers.after_send(p, 11.0, True, jitter)
    armed = p.t_new_handshake
    assert armed is not None and 11.0 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT <= armed
    assert armed < 11.0 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX
    timers.after_send(p, 12.0, True, jitter)
    assert p.t_new_handshake == armed and rng.calls == 1  # not re-armed while it runs


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
