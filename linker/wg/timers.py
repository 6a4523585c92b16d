"""The timer events of a peer (whitepaper 6, wireguard-go timers.go): each arms or disarms deadlines.

The packet paths call ``after_send`` and ``after_receive`` once per batch (or per lone packet) of authenticated
messages: every timer bookkeeping of sending and receiving lives there, so the general paths and the one-packet
fast paths cannot drift apart. The handshake events are separate functions. ``Device.tick`` runs the expired
deadlines. Not thread-safe: a peer belongs to one device and its loop.
"""

from __future__ import annotations

from collections.abc import Callable

from linker.wg.constants import KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX
from linker.wg.peer import Peer

JITTER_POOL = 512  # random bytes drawn at once for timer jitter (two per draw)
NEW_HANDSHAKE_AFTER = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT  # data sent, no reply for this long (plus jitter): rekey


class Jitter:
    """Uniform draws in [0, REKEY_TIMEOUT_JITTER_MAX) to spread timers: not secrets. The random bytes come from a
    pool refilled JITTER_POOL bytes at a time from ``rng``, so a packet's path makes no getrandom call."""

    __slots__ = ("_pool", "_rng", "_used")

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self._pool = b""
        self._used = 0

    def draw(self) -> float:
        pool, used = self._pool, self._used
        if used >= len(pool):
            pool = self._pool = self._rng(JITTER_POOL)
            used = 0
        self._used = used + 2
        return (pool[used] | pool[used + 1] << 8) / 65536 * REKEY_TIMEOUT_JITTER_MAX


def after_send(peer: Peer, now: float, data: bool) -> None:
    """Authenticated messages (transport or handshake) left for ``peer``; ``data`` when at least one carried a
    packet rather than a keepalive. wireguard-go's data_sent, any_authenticated_packet_sent and
    any_authenticated_packet_traversal in one call. The new-handshake timer's jitter is the peer's
    ``new_handshake_jitter``, drawn afresh by ``Device.tick`` whenever that timer fires."""
    if data and peer.t_new_handshake is None:
        # no reply within KEEPALIVE_TIMEOUT + REKEY_TIMEOUT after we sent data: start a new handshake
        peer.t_new_handshake = now + NEW_HANDSHAKE_AFTER + peer.new_handshake_jitter
    peer.t_send_keepalive = None  # anything we send carries the keepalive's news
    if peer.persistent_keepalive > 0:
        peer.t_persistent_keepalive = now + peer.persistent_keepalive


def after_receive(peer: Peer, now: float, data: bool) -> None:
    """Authenticated messages (transport or handshake) came from ``peer``; ``data`` when at least one carried a
    packet rather than a keepalive. wireguard-go's any_authenticated_packet_traversal,
    any_authenticated_packet_received and data_received in one call."""
    if peer.persistent_keepalive > 0:
        peer.t_persistent_keepalive = now + peer.persistent_keepalive
    peer.t_new_handshake = None  # the peer answered: no new handshake for lack of a reply
    if data:
        # if we send nothing within KEEPALIVE_TIMEOUT, send a keepalive
        if peer.t_send_keepalive is None:
            peer.t_send_keepalive = now + KEEPALIVE_TIMEOUT
        else:
            peer.need_another_keepalive = True


def handshake_initiated(peer: Peer, now: float, jitter: float) -> None:
    peer.t_retransmit_handshake = now + REKEY_TIMEOUT + jitter


def handshake_complete(peer: Peer, wall: float) -> None:
    peer.t_retransmit_handshake = None
    peer.handshake_attempts = 0
    peer.sent_lastminute_handshake = False
    peer.last_handshake_wall = wall


def session_derived(peer: Peer, now: float) -> None:
    """Erase every key of this peer if no new session is made for three times REJECT_AFTER_TIME."""
    peer.t_zero_key_material = now + REJECT_AFTER_TIME * 3


def stop_all(peer: Peer) -> None:
    peer.t_retransmit_handshake = None
    peer.t_send_keepalive = None
    peer.t_new_handshake = None
    peer.t_zero_key_material = None
    peer.t_persistent_keepalive = None
