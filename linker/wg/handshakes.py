"""The handshake side of a WireGuard device (whitepaper 5.4): initiations sent and retried, initiations answered
with responses, responses completing a session, cookie replies; and the defence under load (MAC2 cookies, a
per-source rate limit).

``Handshakes`` is a part of ``Device`` (device.py): it keeps the under-load state and the cookie checker, and
otherwise changes the device's peers, index table and counters. Not thread-safe: one loop owns a device.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from linker.wg import noise, timers
from linker.wg.actions import Action, SendDatagram
from linker.wg.constants import (
    HANDSHAKE_INITIATION_RATE,
    MAX_TIMER_HANDSHAKES,
    MESSAGE_COOKIE_REPLY,
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_INITIATION,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE,
    MESSAGE_RESPONSE_SIZE,
    MESSAGE_TRANSPORT,
    REJECT_AFTER_TIME,
    REKEY_TIMEOUT,
    UNDER_LOAD_HANDSHAKES_PER_SECOND,
    UNDER_LOAD_HOLD_TIME,
)
from linker.wg.cookie import CookieChecker
from linker.wg.crypto import InvalidTag
from linker.wg.keys import short
from linker.wg.messages import CookieReply, Initiation, MessageError, Response, message_type
from linker.wg.peer import Peer
from linker.wg.ratelimit import RateLimiter
from linker.wg.session import Keypair

log = logging.getLogger("linker.wg")

_U32 = struct.Struct("<I")


class Handshakes:
    """Handshake messages in and out. A peer's fault raises inside and is dropped and counted by
    ``_decapsulate_one``; nothing here raises to the device's caller."""

    # the device's state that the handshake side uses (set by Device.__init__)
    identity: noise.Identity
    keyed: bool  # False until the device has a private key: no handshake is sent or answered
    peers: dict[bytes, Peer]
    counters: Counter[str]
    jitter: timers.Jitter
    _indices: dict[int, Peer | Keypair]
    _rng: Callable[[int], bytes]
    _wallclock: Callable[[], float]
    _cookie_checker: CookieChecker

    if TYPE_CHECKING:  # the other parts' methods it calls (transport.py, device.py)
        def _receive_transports(self, datagrams: list, src: tuple, now: float) -> list[Action]: ...
        def _send_keepalive(self, peer: Peer, now: float) -> list[Action]: ...
        def _new_index(self) -> int: ...
        def _forget_handshake_index(self, peer: Peer) -> None: ...
        def _drop_keypair(self, keypair: Keypair | None) -> None: ...

    def _init_handshakes(self) -> None:
        self._hs_window_start = float("-inf")
        self._hs_count = 0
        self._under_load_until = float("-inf")
        self._ratelimit_handshakes = RateLimiter()
        self._ratelimit_cookies = RateLimiter()

    def under_load(self, now: float) -> bool:
        return now < self._under_load_until

    def _decapsulate_one(self, datagram: bytes, src: tuple, now: float) -> list[Action]:
        """A datagram outside a run of transport messages: a handshake message, or a short or unknown one. Where
        a peer's fault raises (MessageError, HandshakeError, InvalidTag), it is dropped and counted here."""
        kind = message_type(datagram)
        try:
            if kind == MESSAGE_TRANSPORT:
                return self._receive_transports([datagram], src, now)
            if kind in (MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_COOKIE_REPLY) and not self.keyed:
                self.counters["drop_no_private_key"] += 1
                return []
            if kind == MESSAGE_INITIATION:
                return self._receive_initiation(datagram, src, now)
            if kind == MESSAGE_RESPONSE:
                return self._receive_response(datagram, src, now)
            if kind == MESSAGE_COOKIE_REPLY:
                return self._receive_cookie_reply(datagram, src, now)
        except (MessageError, noise.HandshakeError, InvalidTag) as exc:
            self.counters["drop_invalid"] += 1
            log.debug("dropped datagram: %s", exc, extra={"endpoint": _fmt(src)})
            return []
        self.counters["drop_bad_type"] += 1
        return []

    def _check_macs(self, data: bytes, src: tuple, now: float) -> tuple[bool, list[Action]]:
        """MAC1 always; under load, MAC2 (else answer with a cookie) and the per-source rate limit."""
        under_load = self._note_handshake_message(now)
        if not self._cookie_checker.check_mac1(data):
            self.counters["drop_bad_mac1"] += 1
            return False, []
        if not under_load:
            return True, []
        if not self._cookie_checker.check_mac2(data, src, now):
            if not self._ratelimit_cookies.allow(src[0], now):
                self.counters["drop_cookie_ratelimited"] += 1
                return False, []
            self.counters["tx_cookie_reply"] += 1
            sender = _U32.unpack_from(data, 4)[0]
            return False, [SendDatagram(self._cookie_checker.create_reply(data, sender, src, now), src)]
        if not self._ratelimit_handshakes.allow(src[0], now):
            self.counters["drop_handshake_ratelimited"] += 1
            return False, []
        return True, []

    def _note_handshake_message(self, now: float) -> bool:
        if now - self._hs_window_start >= 1.0:
            self._hs_window_start = now
            self._hs_count = 0
        self._hs_count += 1
        if self._hs_count > UNDER_LOAD_HANDSHAKES_PER_SECOND:
            self._under_load_until = now + UNDER_LOAD_HOLD_TIME
        return now < self._under_load_until

    def _receive_initiation(self, data: bytes, src: tuple, now: float) -> list[Action]:
        if len(data) != MESSAGE_INITIATION_SIZE:
            self.counters["drop_bad_size"] += 1
            return []
        ok, actions = self._check_macs(data, src, now)
        if not ok:
            return actions
        msg = Initiation.decode(data)

        def lookup(public: bytes) -> noise.PeerSecrets | None:
            found = self.peers.get(public)
            return found.secrets if found is not None else None

        consumed = noise.consume_initiation(self.identity, msg, lookup)
        peer = self.peers[consumed.peer_public]
        if consumed.timestamp <= peer.last_timestamp:
            self.counters["drop_handshake_replay"] += 1
            return []
        if now - peer.last_initiation_consumed < HANDSHAKE_INITIATION_RATE:
            self.counters["drop_handshake_flood"] += 1
            return []
        peer.last_timestamp = consumed.timestamp
        peer.last_initiation_consumed = now
        self._forget_handshake_index(peer)
        noise.accept_initiation(peer.handshake, consumed)
        peer.endpoint = src
        peer.rx_bytes += len(data)
        timers.after_receive(peer, now, False)
        return self._send_response(peer, now)

    def _send_response(self, peer: Peer, now: float) -> list[Action]:
        index = self._new_index()
        response = noise.create_response(peer.secrets, peer.handshake, self._rng(32), index)
        buf = bytearray(response.encode())
        peer.cookie.add_macs(buf, now)
        peer.last_sent_handshake = now
        keys = noise.derive_transport_keys(peer.handshake)
        keypair = Keypair(keys, peer, now)
        self._indices[keypair.local_index] = keypair
        # As responder the new session waits in `next` until the initiator's first packet confirms it.
        self._drop_keypair(peer.next)
        self._drop_keypair(peer.previous)
        peer.previous = None
        peer.next = keypair
        timers.session_derived(peer, now)
        timers.after_send(peer, now, False)
        assert peer.endpoint is not None
        peer.tx_bytes += len(buf)
        self.counters["tx_handshake_response"] += 1
        return [SendDatagram(bytes(buf), peer.endpoint)]

    def _receive_response(self, data: bytes, src: tuple, now: float) -> list[Action]:
        if len(data) != MESSAGE_RESPONSE_SIZE:
            self.counters["drop_bad_size"] += 1
            return []
        ok, actions = self._check_macs(data, src, now)
        if not ok:
            return actions
        msg = Response.decode(data)
        peer = self._indices.get(msg.receiver)
        if not isinstance(peer, Peer) or peer.handshake.local_index != msg.receiver:
            self.counters["drop_unknown_index"] += 1
            return []
        noise.consume_response(self.identity, peer.secrets, peer.handshake, msg)
        keys = noise.derive_transport_keys(peer.handshake)
        keypair = Keypair(keys, peer, now)
        self._indices[keypair.local_index] = keypair
        # As initiator the new session is current at once; the old one stays as previous to drain.
        if peer.next is not None:
            self._drop_keypair(peer.current)
            self._drop_keypair(peer.previous)
            peer.previous = peer.next
            peer.next = None
        else:
            self._drop_keypair(peer.previous)
            peer.previous = peer.current
        peer.current = keypair
        peer.endpoint = src
        peer.rx_bytes += len(data)
        timers.after_receive(peer, now, False)
        timers.session_derived(peer, now)
        timers.handshake_complete(peer, self._wallclock())
        log.info("handshake complete", extra={"peer": short(peer.public_key), "endpoint": _fmt(src)})
        return self._send_keepalive(peer, now)

    def _receive_cookie_reply(self, data: bytes, src: tuple, now: float) -> list[Action]:
        if len(data) != MESSAGE_COOKIE_REPLY_SIZE:
            self.counters["drop_bad_size"] += 1
            return []
        msg = CookieReply.decode(data)
        entry = self._indices.get(msg.receiver)
        peer = entry.peer if isinstance(entry, Keypair) else entry
        if peer is None or not peer.cookie.consume_reply(msg, now):
            self.counters["drop_bad_cookie_reply"] += 1
            return []
        self.counters["rx_cookie_reply"] += 1
        return []

    def _send_initiation(self, peer: Peer, now: float, retry: bool) -> list[Action]:
        if not retry:
            peer.handshake_attempts = 0
        if now - peer.last_sent_handshake < REKEY_TIMEOUT or peer.endpoint is None or not self.keyed:
            return []
        if peer.secrets.static_static == noise.ZERO_KEY:
            self.counters["handshake_low_order_key"] += 1
            return []
        peer.last_sent_handshake = now
        self._forget_handshake_index(peer)
        index = self._new_index()
        msg = noise.create_initiation(self.identity, peer.secrets, peer.handshake, self._rng(32), index,
                                      noise.tai64n(self._wallclock()))
        self._indices[index] = peer
        buf = bytearray(msg.encode())
        peer.cookie.add_macs(buf, now)
        timers.after_send(peer, now, False)
        timers.handshake_initiated(peer, now, self.jitter.draw())
        peer.tx_bytes += len(buf)
        self.counters["tx_handshake_initiation"] += 1
        log.debug("sending handshake initiation", extra={"peer": short(peer.public_key),
                                                          "endpoint": _fmt(peer.endpoint)})
        return [SendDatagram(bytes(buf), peer.endpoint)]

    def _retransmit_handshake(self, peer: Peer, now: float) -> list[Action]:
        if peer.handshake_attempts > MAX_TIMER_HANDSHAKES:
            log.info("handshake did not complete after %d attempts, giving up", peer.handshake_attempts + 1,
                     extra={"peer": short(peer.public_key)})
            peer.staged.clear()
            if peer.t_zero_key_material is None:
                peer.t_zero_key_material = now + REJECT_AFTER_TIME * 3
            return []
        peer.handshake_attempts += 1
        return self._send_initiation(peer, now, retry=True)


def _fmt(endpoint: tuple | None) -> str:
    if endpoint is None:
        return "-"
    host, port = endpoint[0], endpoint[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
