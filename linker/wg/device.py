"""A WireGuard device, sans-I/O: peers, cryptokey routing, the index table, and every packet path.

``encapsulate`` takes an IP packet from the TUN device, ``decapsulate`` a UDP datagram from the network, ``tick``
runs the timers; each returns the actions (datagrams to send, packets to write) for the I/O loop to perform.
Hostile or malformed input never raises: it is dropped and counted in ``counters`` (reason -> count). Methods
raise ValueError only for a caller's programming error. Not thread-safe: one loop owns a device.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from linker.wg import noise, timers
from linker.wg.actions import Action, SendDatagram, SendDatagrams, WritePackets, flatten
from linker.wg.allowedips import AllowedIPs, Network, parse_network
from linker.wg.constants import (
    DEFAULT_MTU,
    HANDSHAKE_INITIATION_RATE,
    KEEPALIVE_TIMEOUT,
    KEY_LEN,
    MAX_TIMER_HANDSHAKES,
    MESSAGE_COOKIE_REPLY,
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_INITIATION,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE,
    MESSAGE_RESPONSE_SIZE,
    MESSAGE_TRANSPORT,
    MESSAGE_TRANSPORT_MIN_SIZE,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    REKEY_ON_RECEIVE_AFTER,
    REKEY_TIMEOUT,
    UNDER_LOAD_HANDSHAKES_PER_SECOND,
    UNDER_LOAD_HOLD_TIME,
)
from linker.wg.cookie import CookieChecker
from linker.wg.crypto import InvalidTag
from linker.wg.ipheader import IPV4_HEADER_LEN, destination, source_and_length
from linker.wg.keys import short
from linker.wg.messages import TRANSPORT_HEADER, CookieReply, Initiation, MessageError, Response, message_type
from linker.wg.peer import Peer, PeerStatus
from linker.wg.ratelimit import RateLimiter
from linker.wg.session import Keypair
from linker.wg.timers import after_receive, after_send

log = logging.getLogger("linker.wg")

_UNSET: object = object()
_U32 = struct.Struct("<I")
_U16BE = struct.Struct(">H")
_U64 = struct.Struct("<Q")
_NONCE_PREFIX = bytes(4)


class Device:
    def __init__(self, private_key: bytes, *, rng: Callable[[int], bytes], wallclock: Callable[[], float],
                 mtu: int = DEFAULT_MTU) -> None:
        self._rng = rng
        self._wallclock = wallclock
        self.mtu = mtu
        self.peers: dict[bytes, Peer] = {}
        self.allowed_ips: AllowedIPs[Peer] = AllowedIPs()
        self._indices: dict[int, Peer | Keypair] = {}  # receiver index -> handshake (its peer) or keypair
        self.counters: Counter[str] = Counter()
        self._hs_window_start = float("-inf")
        self._hs_count = 0
        self._under_load_until = float("-inf")
        self._ratelimit_handshakes = RateLimiter()
        self._ratelimit_cookies = RateLimiter()
        self.jitter = timers.Jitter(rng)
        self._set_identity(private_key)

    # ------------------------------------------------------------------ configuration

    def _set_identity(self, private_key: bytes) -> None:
        if len(private_key) != KEY_LEN:
            raise ValueError("a private key is 32 bytes")
        self.identity = noise.Identity.from_private(private_key)
        self._cookie_checker = CookieChecker(self.identity.public, self._rng)

    @property
    def public_key(self) -> bytes:
        return self.identity.public

    @property
    def private_key(self) -> bytes:
        """The raw private key, for the UAPI's ``get`` (root-only socket); never log it."""
        return self.identity.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def set_private_key(self, private_key: bytes, now: float) -> None:
        """Change our static key: every session is dropped, a peer with our new public key is removed."""
        self._set_identity(private_key)
        self.remove_peer(self.identity.public)
        for peer in list(self.peers.values()):
            peer.secrets = noise.PeerSecrets.derive(self.identity, peer.public_key, peer.secrets.preshared_key)
            self._zero_sessions(peer)

    def set_peer(self, public_key: bytes, now: float, *, preshared_key: bytes | object | None = _UNSET,
                 endpoint: tuple | object | None = _UNSET,
                 allowed_ips: Iterable[str | Network] | None = None, replace_allowed_ips: bool = True,
                 persistent_keepalive: int | object = _UNSET) -> list[Action]:
        """Add or change a peer; arguments left out are unchanged. Returns a keepalive when one is due."""
        if len(public_key) != KEY_LEN:
            raise ValueError("a public key is 32 bytes")
        if public_key == self.identity.public:
            raise ValueError("a peer cannot have the device's own public key")
        peer = self.peers.get(public_key)
        if peer is None:
            peer = Peer(noise.PeerSecrets.derive(self.identity, public_key, None))
            self.peers[public_key] = peer
        if preshared_key is not _UNSET:
            psk = preshared_key if isinstance(preshared_key, bytes) else None
            if psk is not None and len(psk) != KEY_LEN:
                raise ValueError("a preshared key is 32 bytes")
            peer.secrets = noise.PeerSecrets.derive(self.identity, public_key, psk)
        if endpoint is not _UNSET:
            peer.endpoint = endpoint if isinstance(endpoint, tuple) else None
        if allowed_ips is not None:
            nets = [parse_network(n) for n in allowed_ips]
            if replace_allowed_ips:
                self.allowed_ips.remove_value(peer)
            for net in nets:
                self.allowed_ips.insert(net, peer)
        actions: list[Action] = []
        if persistent_keepalive is not _UNSET:
            interval = int(persistent_keepalive)  # type: ignore[call-overload]
            if not 0 <= interval <= 65535:
                raise ValueError("persistent keepalive is 0..65535 seconds")
            turned_on = interval > 0 and peer.persistent_keepalive == 0
            peer.persistent_keepalive = interval
            if interval == 0:
                peer.t_persistent_keepalive = None
            if turned_on and peer.endpoint is not None:
                actions += self._send_keepalive(peer, now)
        return actions

    def remove_peer(self, public_key: bytes) -> None:
        peer = self.peers.pop(public_key, None)
        if peer is None:
            return
        self._zero_sessions(peer)
        timers.stop_all(peer)
        self.allowed_ips.remove_value(peer)

    def remove_allowed_ip(self, public_key: bytes, network: str | Network) -> None:
        net = parse_network(network)
        peer = self.peers.get(public_key)
        if peer is not None and net in self.allowed_ips.networks_of(peer):
            self.allowed_ips.remove(net)

    def peer_status(self) -> list[PeerStatus]:
        return [p.status(self.allowed_ips.networks_of(p)) for p in self.peers.values()]

    def check_invariants(self) -> None:
        """Raise RuntimeError if the index table and the peers' sessions disagree (for tests and debugging)."""
        for index, entry in self._indices.items():
            if isinstance(entry, Keypair):
                ok = (self.peers.get(entry.peer.public_key) is entry.peer and entry.local_index == index
                      and entry in entry.peer.keypairs())
            else:
                ok = self.peers.get(entry.public_key) is entry and entry.handshake.local_index == index
            if not ok:
                raise RuntimeError(f"index {index:#x} is stale")
        for peer in self.peers.values():
            for keypair in peer.keypairs():
                if self._indices.get(keypair.local_index) is not keypair:
                    raise RuntimeError(f"a keypair of {short(peer.public_key)} has no index")

    def under_load(self, now: float) -> bool:
        return now < self._under_load_until

    # ------------------------------------------------------------------ from the TUN device

    def encapsulate(self, packet: bytes, now: float) -> list[Action]:
        """An IP packet from the TUN device: encrypt it for the peer whose AllowedIPs hold its destination.

        Returns only SendDatagram actions (the one-packet form of ``encapsulate_batch``)."""
        return flatten(self.encapsulate_batch([packet], now))  # type: ignore[return-value]

    def seal_one(self, packet: bytes, now: float) -> tuple[bytes, tuple] | None:
        """The fast path of one IP packet from TUN: (transport message, endpoint) when it can leave at once under
        its peer's current session with nothing else to do; else None, with nothing changed, and the caller
        hands the same packet to ``encapsulate_batch`` (which drops it, stages it for a handshake, or seals it
        and starts a rekey).

        A lone packet on an idle tunnel (a ping, a request) pays for every object it touches while the caches
        are cold: this path builds no action and no list."""
        address = destination(packet)
        if address is None:
            return None
        peer = self.allowed_ips.lookup(address)
        if peer is None or peer.endpoint is None:
            return None
        keypair = peer.current
        if keypair is None or keypair.send_counter >= REKEY_AFTER_MESSAGES:
            return None
        age = now - keypair.created
        if age >= REJECT_AFTER_TIME or (keypair.initiator and age > REKEY_AFTER_TIME):
            return None  # no session, or this message would trigger a rekey: the general path does both
        datagram = keypair.seal(packet, self.mtu)
        # the bookkeeping of _send_packets; test_fast_paths holds the two paths to the same timers and bytes
        peer.tx_bytes += len(datagram)
        after_send(peer, now, True, self.jitter)
        return datagram, peer.endpoint

    def encapsulate_batch(self, packets: list, now: float) -> list[Action]:
        """IP packets (bytes-like) from the TUN device, in order. Consecutive packets for the same peer are sealed
        together and returned as one SendDatagrams, so the loop can hand them to the kernel in one call."""
        actions: list[Action] = []
        lookup = self.allowed_ips.lookup
        counters = self.counters
        group: list = []
        group_peer: Peer | None = None
        for packet in packets:
            address = destination(packet)
            if address is None:
                counters["tun_drop_not_ip"] += 1
                continue
            peer = lookup(address)
            if peer is None:
                counters["tun_drop_no_peer"] += 1
                continue
            if peer is not group_peer:
                if group_peer is not None:
                    actions += self._send_packets(group_peer, group, now)
                group_peer, group = peer, []
            group.append(packet)
        if group_peer is not None:
            actions += self._send_packets(group_peer, group, now)
        return actions

    # ------------------------------------------------------------------ from the network

    def decapsulate(self, datagram: bytes, src: tuple, now: float) -> list[Action]:
        """A UDP datagram from ``src``: handshake messages are answered, transport data is decrypted for TUN.

        Returns only SendDatagram and WriteTun actions (the one-datagram form of ``decapsulate_batch``)."""
        return flatten(self.decapsulate_batch([datagram], src, now))  # type: ignore[return-value]

    def decapsulate_batch(self, datagrams: list, src: tuple, now: float) -> list[Action]:
        """UDP datagrams (bytes-like) from one source, in arrival order. Runs of transport messages take the fast
        path: one keypair lookup, one set of timer updates and one WritePackets per run. No reference to the
        datagrams is kept: they may be views of a buffer the caller reuses."""
        actions: list[Action] = []
        run: list = []
        for datagram in datagrams:
            if len(datagram) >= MESSAGE_TRANSPORT_MIN_SIZE and datagram[0] == MESSAGE_TRANSPORT:
                run.append(datagram)
                continue
            if run:
                actions += self._receive_transports(run, src, now)
                run = []
            actions += self._decapsulate_one(bytes(datagram), src, now)
        if run:
            actions += self._receive_transports(run, src, now)
        return actions

    def _decapsulate_one(self, datagram: bytes, src: tuple, now: float) -> list[Action]:
        kind = message_type(datagram)
        try:
            if kind == MESSAGE_TRANSPORT:
                return self._receive_transports([datagram], src, now)
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

    def _receive_transports(self, datagrams: list, src: tuple, now: float) -> list[Action]:
        """Transport messages (type 4 checked by the caller). Each is checked against its keypair's replay window
        before decryption and marked only after it authenticated; per keypair, the bookkeeping is done once."""
        counters = self.counters
        indices = self._indices
        unpack = TRANSPORT_HEADER.unpack_from
        actions: list[Action] = []
        packets: list[bytes] = []
        keypair: Keypair | None = None
        index = -1
        refusal = ""  # why the current receiver index is refused
        size = 0  # bytes of the current keypair's authenticated messages
        empty = 0  # keepalives among them
        for data in datagrams:
            if len(data) < MESSAGE_TRANSPORT_MIN_SIZE:
                counters["drop_short"] += 1
                continue
            kind, receiver, counter = unpack(data)
            if kind != MESSAGE_TRANSPORT:  # the type is a whole little-endian word: reserved bytes must be zero
                counters["drop_bad_type"] += 1
                continue
            if receiver != index:
                if keypair is not None and size:
                    actions += self._authenticated(keypair, src, now, size, empty, packets)
                    packets = []
                    size = empty = 0
                index = receiver
                found = indices.get(receiver)
                keypair = found if isinstance(found, Keypair) and found.can_receive(now) else None
                refusal = "drop_expired_session" if isinstance(found, Keypair) else "drop_unknown_index"
                if keypair is not None:
                    check, mark, decrypt = keypair.replay.check, keypair.replay.mark, keypair.opener
            if keypair is None:
                counters[refusal] += 1
                continue
            if not check(counter):
                counters["drop_replay"] += 1
                continue
            try:
                # the nonce: 32 zero bits, then the counter as the header carries it (little-endian)
                plaintext = decrypt(_NONCE_PREFIX + _U64.pack(counter), data[16:], None)
            except InvalidTag:
                counters["drop_bad_mac"] += 1
                continue
            if not mark(counter):
                counters["drop_replay"] += 1
                continue
            size += len(data)
            if plaintext:
                packets.append(plaintext)
            else:
                empty += 1
        if keypair is not None and size:
            actions += self._authenticated(keypair, src, now, size, empty, packets)
        return actions

    def _authenticated(self, keypair: Keypair, src: tuple, now: float, size: int, keepalives: int,
                       plaintexts: list[bytes]) -> list[Action]:
        """Bookkeeping for authenticated transport messages of one keypair, then their packets for TUN."""
        peer = keypair.peer
        peer.endpoint = src  # roaming: the latest authenticated source is where the peer is
        peer.rx_bytes += size
        actions: list[Action] = []
        if keypair is peer.next:
            self._confirm_next(peer)
            timers.handshake_complete(peer, self._wallclock())
            actions += self._send_staged(peer, now)
        current = peer.current
        if (current is not None and current.initiator and not peer.sent_lastminute_handshake
                and now - current.created > REKEY_ON_RECEIVE_AFTER):
            peer.sent_lastminute_handshake = True
            actions += self._send_initiation(peer, now, retry=False)
        after_receive(peer, now, len(plaintexts) > 0)
        if keepalives:
            self.counters["rx_keepalive"] += keepalives
        if not plaintexts:
            return actions
        out = []
        for plaintext in plaintexts:
            packet = self._inner_packet(peer, plaintext)
            if packet is not None:
                out.append(packet)
        if out:
            actions.append(WritePackets(out))
        return actions

    def _inner_packet(self, peer: Peer, plaintext: bytes) -> bytes | None:
        """The IP packet inside an authenticated plaintext, cut to its IP length (the padding off), or None (and
        counted) when it is not an IP packet or its source is not in the peer's AllowedIPs."""
        header = source_and_length(plaintext)
        if header is None:
            self.counters["drop_not_ip"] += 1
            return None
        source, length = header
        size = len(plaintext)
        if length > size or length < IPV4_HEADER_LEN:
            self.counters["drop_bad_ip_length"] += 1
            return None
        if self.allowed_ips.lookup(source) is not peer:
            self.counters["drop_source_not_allowed"] += 1
            return None
        return plaintext if length == size else plaintext[:length]

    def open_one(self, datagram: bytes, src: tuple, now: float) -> bytes | None:
        """The fast path of one transport message: the IP packet to write to TUN, or b"" when the message was
        taken but yields nothing to write (a keepalive, or dropped and counted); None, with nothing changed,
        when it is not a plain transport message under a current or previous session, and the caller hands
        it to ``decapsulate_batch``. Like ``seal_one``, it builds no action and no list."""
        if len(datagram) < MESSAGE_TRANSPORT_MIN_SIZE:
            return None
        kind, receiver, counter = TRANSPORT_HEADER.unpack_from(datagram)
        keypair = self._indices.get(receiver)
        if kind != MESSAGE_TRANSPORT or type(keypair) is not Keypair or now - keypair.created >= REJECT_AFTER_TIME:
            return None
        peer = keypair.peer
        current = peer.current
        if keypair is peer.next or (current is not None and current.initiator and not peer.sent_lastminute_handshake
                                    and now - current.created > REKEY_ON_RECEIVE_AFTER):
            return None  # it confirms a new session, or it is time to rekey: the general path does both
        if not keypair.replay.check(counter):
            self.counters["drop_replay"] += 1
            return b""
        try:
            plaintext = keypair.opener(_NONCE_PREFIX + datagram[8:16], datagram[16:], None)
        except InvalidTag:
            self.counters["drop_bad_mac"] += 1
            return b""
        if not keypair.replay.mark(counter):
            self.counters["drop_replay"] += 1
            return b""
        peer.endpoint = src  # roaming: the latest authenticated source is where the peer is
        peer.rx_bytes += len(datagram)
        after_receive(peer, now, len(plaintext) > 0)  # the bookkeeping of _authenticated
        if not plaintext:
            self.counters["rx_keepalive"] += 1
            return b""
        packet = self._inner_packet(peer, plaintext)
        return b"" if packet is None else packet

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
        after_receive(peer, now, False)
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
        after_send(peer, now, False, self.jitter)
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
        after_receive(peer, now, False)
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

    # ------------------------------------------------------------------ sending

    def _send_packets(self, peer: Peer, packets: list, now: float) -> list[Action]:
        """Seal ``packets`` (b"" is a keepalive) for ``peer`` under its current session, or stage them and start
        a handshake when there is none to send with."""
        if peer.endpoint is None:
            self.counters["tun_drop_no_endpoint"] += len(packets)
            return []
        keypair = peer.current
        count = len(packets)
        if keypair is None or not keypair.can_send(now, count):
            peer.staged.extend(packets)
            return self._send_initiation(peer, now, retry=False)
        datagrams = keypair.seal_many(packets, self.mtu)
        size = 0
        for d in datagrams:
            size += len(d)
        peer.tx_bytes += size
        after_send(peer, now, count > 1 or len(packets[0]) > 0, self.jitter)  # a keepalive alone is no data
        actions: list[Action] = [SendDatagrams(datagrams, peer.endpoint)]
        if keypair.send_counter > REKEY_AFTER_MESSAGES or (
                keypair.initiator and now - keypair.created > REKEY_AFTER_TIME):
            actions += self._send_initiation(peer, now, retry=False)
        return actions

    def _send_staged(self, peer: Peer, now: float) -> list[Action]:
        if not peer.staged:
            return []
        keypair = peer.current
        if keypair is None or not keypair.can_send(now, len(peer.staged)) or peer.endpoint is None:
            return self._send_initiation(peer, now, retry=False)
        packets = list(peer.staged)
        peer.staged.clear()
        return self._send_packets(peer, packets, now)

    def _send_keepalive(self, peer: Peer, now: float) -> list[Action]:
        """Send the staged packets, or an empty (keepalive) message when there are none."""
        if peer.endpoint is None:
            return []
        if not peer.staged:
            peer.staged.append(b"")
        return self._send_staged(peer, now)

    def _send_initiation(self, peer: Peer, now: float, retry: bool) -> list[Action]:
        if not retry:
            peer.handshake_attempts = 0
        if now - peer.last_sent_handshake < REKEY_TIMEOUT or peer.endpoint is None:
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
        after_send(peer, now, False, self.jitter)
        timers.handshake_initiated(peer, now, self.jitter.draw())
        peer.tx_bytes += len(buf)
        self.counters["tx_handshake_initiation"] += 1
        log.debug("sending handshake initiation", extra={"peer": short(peer.public_key),
                                                          "endpoint": _fmt(peer.endpoint)})
        return [SendDatagram(bytes(buf), peer.endpoint)]

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> list[Action]:
        """Run every expired timer of every peer. Call at least every 100 ms."""
        actions: list[Action] = []
        for peer in list(self.peers.values()):
            if peer.t_retransmit_handshake is not None and now >= peer.t_retransmit_handshake:
                peer.t_retransmit_handshake = None
                actions += self._retransmit_handshake(peer, now)
            if peer.t_send_keepalive is not None and now >= peer.t_send_keepalive:
                peer.t_send_keepalive = None
                actions += self._send_keepalive(peer, now)
                if peer.need_another_keepalive:
                    peer.need_another_keepalive = False
                    peer.t_send_keepalive = now + KEEPALIVE_TIMEOUT
            if peer.t_new_handshake is not None and now >= peer.t_new_handshake:
                peer.t_new_handshake = None
                log.debug("no reply to our data: new handshake", extra={"peer": short(peer.public_key)})
                actions += self._send_initiation(peer, now, retry=False)
            if peer.t_zero_key_material is not None and now >= peer.t_zero_key_material:
                peer.t_zero_key_material = None
                self._zero_sessions(peer)
            if peer.t_persistent_keepalive is not None and now >= peer.t_persistent_keepalive:
                peer.t_persistent_keepalive = None
                if peer.persistent_keepalive > 0:
                    actions += self._send_keepalive(peer, now)
        return actions

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

    # ------------------------------------------------------------------ sessions and indices

    def _new_index(self) -> int:
        while True:
            index = _U32.unpack(self._rng(4))[0]
            if index and index not in self._indices:
                return index

    def _forget_handshake_index(self, peer: Peer) -> None:
        index = peer.handshake.local_index
        if index and self._indices.get(index) is peer:
            del self._indices[index]

    def _drop_keypair(self, keypair: Keypair | None) -> None:
        if keypair is not None and self._indices.get(keypair.local_index) is keypair:
            del self._indices[keypair.local_index]

    def _confirm_next(self, peer: Peer) -> None:
        self._drop_keypair(peer.previous)
        peer.previous = peer.current
        peer.current = peer.next
        peer.next = None

    def _zero_sessions(self, peer: Peer) -> None:
        for keypair in peer.keypairs():
            self._drop_keypair(keypair)
        peer.previous = peer.current = peer.next = None
        self._forget_handshake_index(peer)
        peer.handshake.clear()
        peer.staged.clear()


def _fmt(endpoint: tuple | None) -> str:
    if endpoint is None:
        return "-"
    host, port = endpoint[0], endpoint[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
