"""One peer's state: keys, sessions (previous / current / next keypair), staged packets, counters, timers.

Timers are deadlines in the caller's monotonic time (None: not armed); the device checks them on ``tick``.
Their names follow wireguard-go's timers.go.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from linker.wg.allowedips import Network
from linker.wg.constants import MAX_STAGED_PACKETS
from linker.wg.cookie import CookieGenerator
from linker.wg.noise import Handshake, PeerSecrets
from linker.wg.session import Keypair


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """A peer as `wg show` reports it. ``last_handshake`` is wall-clock seconds, None before the first."""

    public_key: bytes
    preshared_key: bytes | None
    endpoint: tuple | None
    last_handshake: float | None
    rx_bytes: int
    tx_bytes: int
    persistent_keepalive: int
    allowed_ips: tuple[Network, ...]
    has_session: bool


class Peer:
    """Not thread-safe: owned by one device, driven by one loop."""

    # slots: the packet paths read a peer's fields on every packet; no per-instance dict to walk (or to miss in
    # a cold cache)
    __slots__ = ("cookie", "current", "endpoint", "handshake", "handshake_attempts", "last_handshake_wall",
                 "last_initiation_consumed", "last_sent_handshake", "last_timestamp", "need_another_keepalive",
                 "new_handshake_jitter", "next", "persistent_keepalive", "previous", "public_key", "rx_bytes",
                 "secrets", "sent_lastminute_handshake", "staged", "t_new_handshake", "t_persistent_keepalive",
                 "t_retransmit_handshake", "t_send_keepalive", "t_zero_key_material", "tx_bytes")

    def __init__(self, secrets: PeerSecrets) -> None:
        self.public_key = secrets.public
        self.secrets = secrets
        self.cookie = CookieGenerator(secrets.public)
        self.handshake = Handshake()
        self.endpoint: tuple | None = None
        self.persistent_keepalive = 0
        self.previous: Keypair | None = None
        self.current: Keypair | None = None
        self.next: Keypair | None = None
        self.staged: deque[bytes] = deque(maxlen=MAX_STAGED_PACKETS)
        self.last_timestamp = bytes(12)
        self.last_initiation_consumed = float("-inf")
        self.last_sent_handshake = float("-inf")
        self.last_handshake_wall: float | None = None
        self.handshake_attempts = 0
        self.sent_lastminute_handshake = False
        self.need_another_keepalive = False
        self.rx_bytes = 0
        self.tx_bytes = 0
        # timer deadlines
        self.t_retransmit_handshake: float | None = None
        self.t_send_keepalive: float | None = None
        self.t_new_handshake: float | None = None
        self.t_zero_key_material: float | None = None
        self.t_persistent_keepalive: float | None = None
        # the jitter of the next new-handshake timer (the device draws it when the peer is made and each time that
        # timer fires): sending data arms the timer with no draw, and only a timer that fires uses up its jitter
        self.new_handshake_jitter = 0.0

    def keypairs(self) -> list[Keypair]:
        return [k for k in (self.previous, self.current, self.next) if k is not None]

    def status(self, allowed_ips: list[Network]) -> PeerStatus:
        psk = self.secrets.preshared_key
        return PeerStatus(
            public_key=self.public_key,
            preshared_key=None if psk == bytes(32) else psk,
            endpoint=self.endpoint,
            last_handshake=self.last_handshake_wall,
            rx_bytes=self.rx_bytes,
            tx_bytes=self.tx_bytes,
            persistent_keepalive=self.persistent_keepalive,
            allowed_ips=tuple(allowed_ips),
            has_session=self.current is not None,
        )
