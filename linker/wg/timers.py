"""The timer events of a peer (whitepaper 6, wireguard-go timers.go): each arms or disarms deadlines.

The device calls these as packets come and go; ``Device.tick`` runs the expired ones. ``jitter`` is a value in
[0, REKEY_TIMEOUT_JITTER_MAX) drawn by the device from its random source.
"""

from __future__ import annotations

from linker.wg.constants import KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT
from linker.wg.peer import Peer


def data_sent(peer: Peer, now: float, jitter: float) -> None:
    """No reply within KEEPALIVE_TIMEOUT + REKEY_TIMEOUT after we sent data: start a new handshake."""
    if peer.t_new_handshake is None:
        peer.t_new_handshake = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter


def data_received(peer: Peer, now: float) -> None:
    """We received data: if we send nothing within KEEPALIVE_TIMEOUT, send a keepalive."""
    if peer.t_send_keepalive is None:
        peer.t_send_keepalive = now + KEEPALIVE_TIMEOUT
    else:
        peer.need_another_keepalive = True


def any_authenticated_packet_sent(peer: Peer) -> None:
    """Anything we send carries the keepalive's news: no separate keepalive is owed."""
    peer.t_send_keepalive = None


def any_authenticated_packet_received(peer: Peer) -> None:
    """The peer answered: no new handshake is needed for lack of a reply."""
    peer.t_new_handshake = None


def any_authenticated_packet_traversal(peer: Peer, now: float) -> None:
    if peer.persistent_keepalive > 0:
        peer.t_persistent_keepalive = now + peer.persistent_keepalive


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
