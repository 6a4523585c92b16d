"""The transport side of a WireGuard device: IP packets sealed into transport messages, transport messages
opened into IP packets, in batches (the general paths) and one at a time (the fast paths of a lone packet).

``Transport`` is a part of ``Device`` (device.py) and holds no state of its own: it reads and changes the
device's peers, index table and counters. The general and the fast paths share their bookkeeping through
``timers.after_send`` and ``timers.after_receive`` and their IP parsing through ``ipheader``; tests/pair runs
every protocol test through both. Not thread-safe: one loop owns a device.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from linker.wg import timers
from linker.wg.actions import Action, SendDatagrams, WritePackets, flatten
from linker.wg.allowedips import AllowedIPs
from linker.wg.constants import (
    KEEPALIVE_TIMEOUT,
    MESSAGE_TRANSPORT,
    MESSAGE_TRANSPORT_MIN_SIZE,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    REKEY_ON_RECEIVE_AFTER,
)
from linker.wg.crypto import InvalidTag
from linker.wg.ipheader import IPV4_HEADER_LEN, destination, source_and_length
from linker.wg.messages import TRANSPORT_HEADER
from linker.wg.peer import Peer
from linker.wg.session import OVERHEAD, Keypair
from linker.wg.timers import NEW_HANDSHAKE_AFTER, after_receive, after_send

_U64 = struct.Struct("<Q")
_NONCE_PREFIX = bytes(4)  # a transport nonce: 32 zero bits, then the 64-bit counter


class Transport:
    """The packet paths of a Device: ``encapsulate*``/``seal_one`` from TUN, ``decapsulate*``/``open_one`` from
    the network. Hostile input never raises: it is dropped and counted in ``counters``."""

    # the device's state that these paths use (set by Device.__init__)
    mtu: int
    counters: Counter[str]
    allowed_ips: AllowedIPs[Peer]
    _indices: dict[int, Peer | Keypair]
    _wallclock: Callable[[], float]

    if TYPE_CHECKING:  # the other parts' methods these paths call (handshakes.py, device.py)
        def _send_initiation(self, peer: Peer, now: float, retry: bool) -> list[Action]: ...
        def _decapsulate_one(self, datagram: bytes, src: tuple, now: float) -> list[Action]: ...
        def _confirm_next(self, peer: Peer) -> None: ...

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
        are cold: this path builds no action and no list, and calls as little as it can (``packet`` is bytes,
        as the loop reads it)."""
        # destination(), inline for IPv4 (the common case)
        if len(packet) >= IPV4_HEADER_LEN and packet[0] >> 4 == 4:
            address: bytes | None = packet[16:20]
        else:
            address = destination(packet)
            if address is None:
                return None
        peer = self.allowed_ips.cached(address) or self.allowed_ips.lookup(address)
        if peer is None or peer.endpoint is None:
            return None
        keypair = peer.current
        if keypair is None or keypair.send_counter >= REKEY_AFTER_MESSAGES:
            return None
        age = now - keypair.created
        if age >= REJECT_AFTER_TIME or (keypair.initiator and age > REKEY_AFTER_TIME):
            return None  # no session, or this message would trigger a rekey: the general path does both
        datagram = keypair.seal(packet, self.mtu)
        # the bookkeeping of _send_packets, after_send(data=True) inline; test_fast_paths holds the two paths to
        # the same timers and bytes
        peer.tx_bytes += len(datagram)
        if peer.t_new_handshake is None:
            peer.t_new_handshake = now + NEW_HANDSHAKE_AFTER + peer.new_handshake_jitter
        peer.t_send_keepalive = None
        if peer.persistent_keepalive:
            peer.t_persistent_keepalive = now + peer.persistent_keepalive
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
        out: memoryview | None = None
        at = 0
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
                    check, mark, open_into = keypair.replay.check, keypair.replay.mark, keypair.open_into
            if keypair is None:
                counters[refusal] += 1
                continue
            if not check(counter):
                counters["drop_replay"] += 1
                continue
            if out is None:  # one buffer for every plaintext of this call: views of it go to TUN
                room = 0
                for d in datagrams:
                    room += len(d)
                out = memoryview(bytearray(room))
            end = at + len(data) - OVERHEAD
            try:
                # the nonce: 32 zero bits, then the counter as the header carries it (little-endian)
                open_into(_NONCE_PREFIX + _U64.pack(counter), data[16:], None, out[at:end])
            except InvalidTag:
                counters["drop_bad_mac"] += 1
                continue
            if not mark(counter):
                counters["drop_replay"] += 1
                continue
            size += len(data)
            if end > at:
                packets.append(out[at:end])
                at = end
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
        # the replay window is marked once the message authenticated, as everywhere; the check that the general
        # path makes first (it spares a batch the decryption of a replay) is only made here if the message fails,
        # to count it as the general path does: a replay costs this path one decryption, as in wireguard-go
        try:
            plaintext = keypair.opener(_NONCE_PREFIX + datagram[8:16], datagram[16:], None)
        except InvalidTag:
            self.counters["drop_bad_mac" if keypair.replay.check(counter) else "drop_replay"] += 1
            return b""
        if not keypair.replay.mark(counter):
            self.counters["drop_replay"] += 1
            return b""
        peer.endpoint = src  # roaming: the latest authenticated source is where the peer is
        peer.rx_bytes += len(datagram)
        # the bookkeeping of _authenticated: after_receive, inline
        if peer.persistent_keepalive:
            peer.t_persistent_keepalive = now + peer.persistent_keepalive
        peer.t_new_handshake = None
        if not plaintext:
            self.counters["rx_keepalive"] += 1
            return b""
        if peer.t_send_keepalive is None:
            peer.t_send_keepalive = now + KEEPALIVE_TIMEOUT
        else:
            peer.need_another_keepalive = True
        # _inner_packet, inline for an IPv4 packet from an allowed source (the common case); the helper counts
        # why anything else is dropped
        size = len(plaintext)
        if size >= IPV4_HEADER_LEN and plaintext[0] >> 4 == 4:
            length = (plaintext[2] << 8) | plaintext[3]
            source = plaintext[12:16]
            if IPV4_HEADER_LEN <= length <= size and (
                    self.allowed_ips.cached(source) or self.allowed_ips.lookup(source)) is peer:
                return plaintext if length == size else plaintext[:length]
        packet = self._inner_packet(peer, plaintext)
        return b"" if packet is None else packet

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
        after_send(peer, now, count > 1 or len(packets[0]) > 0)  # a keepalive alone is no data
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
