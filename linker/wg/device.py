"""A WireGuard device, sans-I/O: its identity, its peers and their AllowedIPs, the index table, the timers (their next
deadline, and the tick that runs them).

``Device`` is assembled from two parts that share its state: ``Transport`` (transport.py: ``encapsulate*`` and
``seal_one`` take IP packets from the TUN device, ``decapsulate*`` and ``open_one`` UDP datagrams from the
network) and ``Handshakes`` (handshakes.py: initiation, response, cookie reply). ``tick`` runs the timers. Each
returns the actions (datagrams to send, packets to write) for the I/O loop to perform. Hostile or malformed
input never raises: it is dropped and counted in ``counters`` (reason -> count). Methods raise ValueError only
for a caller's programming error. Not thread-safe: one loop owns a device.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from linker.wg import noise, timers
from linker.wg.actions import Action
from linker.wg.allowedips import AllowedIPs, Network, parse_network
from linker.wg.constants import DEFAULT_MTU, KEEPALIVE_TIMEOUT, KEY_LEN
from linker.wg.cookie import CookieChecker
from linker.wg.handshakes import Handshakes
from linker.wg.keys import short
from linker.wg.peer import Peer, PeerStatus
from linker.wg.session import Keypair
from linker.wg.transport import Transport

log = logging.getLogger("linker.wg")

_UNSET: object = object()
_NEVER = float("inf")
_U32 = struct.Struct("<I")


class Device(Transport, Handshakes):
    """A WireGuard interface's protocol state. The packet paths are those of ``Transport``, the handshake
    messages those of ``Handshakes``; this class holds what they share: peers, the index table, counters."""

    def __init__(self, private_key: bytes | None, *, rng: Callable[[int], bytes], wallclock: Callable[[], float],
                 mtu: int = DEFAULT_MTU) -> None:
        """``private_key`` None: a device with no key yet, as wireguard-go starts before `wg setconf` gives it one.
        It neither sends nor answers handshake messages until ``set_private_key``; its placeholder identity (a
        random key that never leaves the object) only keeps the peers' precomputed secrets well-formed."""
        self._rng = rng
        self._wallclock = wallclock
        self.mtu = mtu
        self.peers: dict[bytes, Peer] = {}
        self.allowed_ips: AllowedIPs[Peer] = AllowedIPs()
        self._indices: dict[int, Peer | Keypair] = {}  # receiver index -> handshake (its peer) or keypair
        self.counters: Counter[str] = Counter()
        self.jitter = timers.Jitter(rng)
        # seal_one and open_one, when they take a packet at time t, arm no timer sooner than t + lone_horizon and
        # move no armed timer earlier (each arms the keepalive, new-handshake or persistent-keepalive timer, or
        # moves it later): a loop whose alarm rings by then need not ask next_deadline again after them
        self.lone_horizon = float(KEEPALIVE_TIMEOUT)
        self._init_handshakes()
        self.keyed = private_key is not None
        self._set_identity(private_key if private_key is not None else rng(KEY_LEN))

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
        self.keyed = True
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
            peer.new_handshake_jitter = self.jitter.draw()
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
            self._lone_horizon()
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
        self._lone_horizon()

    def _lone_horizon(self) -> None:
        """``lone_horizon``: the keepalive timeout, or the shortest persistent keepalive if one is shorter."""
        intervals = [p.persistent_keepalive for p in self.peers.values() if p.persistent_keepalive]
        self.lone_horizon = float(min([KEEPALIVE_TIMEOUT, *intervals]))

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

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do: the earliest armed timer of any peer (keepalive, persistent
        keepalive, handshake retry, new handshake for lack of a reply, zeroing of keys), or None when none is
        armed. Pure: changes nothing. Every packet, handshake and configuration call may arm a timer, so ask
        again after each; a loop that sleeps until this deadline and then ticks behaves as one that ticks
        without pause (tests/pair runs every protocol test both ways)."""
        earliest = _NEVER
        for peer in self.peers.values():
            # unrolled, and min() avoided: the loop asks after every wake-up, cold on an idle tunnel
            t = peer.t_retransmit_handshake
            if t is not None and t < earliest:
                earliest = t
            t = peer.t_send_keepalive
            if t is not None and t < earliest:
                earliest = t
            t = peer.t_new_handshake
            if t is not None and t < earliest:
                earliest = t
            t = peer.t_zero_key_material
            if t is not None and t < earliest:
                earliest = t
            t = peer.t_persistent_keepalive
            if t is not None and t < earliest:
                earliest = t
        return None if earliest == _NEVER else earliest

    def tick(self, now: float) -> list[Action]:
        """Run every expired timer of every peer: at ``next_deadline()``, or at any time (it does nothing early)."""
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
                peer.new_handshake_jitter = self.jitter.draw()  # the next one's: each timer that fires has its own
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
