"""The Noise_IKpsk2 handshake of WireGuard (whitepaper 5.4.2 - 5.4.5), as pure functions over a ``Handshake``.

Each step quotes the whitepaper line it implements. Nothing here touches a clock, a socket or a random source:
ephemeral keys, indices and timestamps come in as arguments.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from linker.wg import crypto
from linker.wg.constants import CONSTRUCTION, IDENTIFIER
from linker.wg.messages import Initiation, Response

INITIAL_CHAINING_KEY = crypto.hash_(CONSTRUCTION)
INITIAL_HASH = crypto.hash_(INITIAL_CHAINING_KEY, IDENTIFIER)
ZERO_KEY = bytes(32)
_TAI64_BASE = 0x400000000000000A
_WHITENER_MASK = 0x1000000 - 1  # round nanoseconds down so the timestamp leaks no fine timing


class HandshakeError(ValueError):
    """A handshake message that does not authenticate or does not fit our state."""


class State(enum.Enum):
    ZEROED = 0
    CREATED_INITIATION = 1
    CONSUMED_INITIATION = 2
    CREATED_RESPONSE = 3
    CONSUMED_RESPONSE = 4


def raw_public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def tai64n(wall: float) -> bytes:
    """TAI64N timestamp of the wall-clock time ``wall`` (12 bytes, big-endian, strictly comparable)."""
    seconds = int(wall)
    nanos = int((wall - seconds) * 1e9) & ~_WHITENER_MASK
    return struct.pack(">QI", _TAI64_BASE + seconds, nanos)


@dataclass(frozen=True, slots=True)
class Identity:
    """Our static key pair and what follows from it."""

    private: X25519PrivateKey
    public: bytes
    responder_hash: bytes  # HASH(HASH(Ci || IDENTIFIER) || Spub_r) with us as responder

    @classmethod
    def from_private(cls, private_key: bytes) -> Identity:
        priv = X25519PrivateKey.from_private_bytes(private_key)
        pub = raw_public(priv)
        return cls(priv, pub, crypto.hash_(INITIAL_HASH, pub))


@dataclass(frozen=True, slots=True)
class PeerSecrets:
    """What the handshake needs of one peer: its static key, DH(S_priv, S_pub_peer) and the PSK."""

    public: bytes
    static_static: bytes  # all zero when the peer's key is of low order: handshakes with it fail
    preshared_key: bytes

    @classmethod
    def derive(cls, identity: Identity, public: bytes, preshared_key: bytes | None) -> PeerSecrets:
        try:
            ss = crypto.dh(identity.private, public)
        except ValueError:
            ss = ZERO_KEY
        return cls(public, ss, preshared_key or ZERO_KEY)


class Handshake:
    """The handshake state towards one peer. Not thread-safe."""

    __slots__ = ("chaining_key", "hash", "local_ephemeral", "local_index", "remote_ephemeral", "remote_index",
                 "state")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.state = State.ZEROED
        self.chaining_key = b""
        self.hash = b""
        self.local_ephemeral: X25519PrivateKey | None = None
        self.remote_ephemeral = b""
        self.local_index = 0
        self.remote_index = 0


def create_initiation(identity: Identity, peer: PeerSecrets, hs: Handshake, ephemeral_private: bytes,
                      sender_index: int, timestamp: bytes) -> Initiation:
    """The initiator's first message. Leaves ``hs`` in CREATED_INITIATION. MACs are added by the caller."""
    if peer.static_static == ZERO_KEY:
        raise HandshakeError("the peer's public key is of low order")
    # Ci := HASH(CONSTRUCTION); Hi := HASH(Ci || IDENTIFIER); Hi := HASH(Hi || Spub_r)
    ck = INITIAL_CHAINING_KEY
    h = crypto.hash_(INITIAL_HASH, peer.public)
    # (Epriv_i, Epub_i) := DH-GENERATE(); Ci := KDF1(Ci, Epub_i)
    # msg.ephemeral := Epub_i; Hi := HASH(Hi || msg.ephemeral)
    eph = X25519PrivateKey.from_private_bytes(ephemeral_private)
    eph_pub = raw_public(eph)
    ck = crypto.kdf1(ck, eph_pub)
    h = crypto.hash_(h, eph_pub)
    # (Ci, κ) := KDF2(Ci, DH(Epriv_i, Spub_r)); msg.static := AEAD(κ, 0, Spub_i, Hi); Hi := HASH(Hi || msg.static)
    ck, key = crypto.kdf2(ck, crypto.dh(eph, peer.public))
    enc_static = crypto.aead_encrypt(key, 0, identity.public, h)
    h = crypto.hash_(h, enc_static)
    # (Ci, κ) := KDF2(Ci, DH(Spriv_i, Spub_r)); msg.timestamp := AEAD(κ, 0, TAI64N(), Hi)
    # Hi := HASH(Hi || msg.timestamp)
    ck, key = crypto.kdf2(ck, peer.static_static)
    enc_ts = crypto.aead_encrypt(key, 0, timestamp, h)
    h = crypto.hash_(h, enc_ts)
    hs.clear()
    hs.state = State.CREATED_INITIATION
    hs.chaining_key, hs.hash = ck, h
    hs.local_ephemeral = eph
    hs.local_index = sender_index
    return Initiation(sender_index, eph_pub, enc_static, enc_ts)


@dataclass(frozen=True, slots=True)
class ConsumedInitiation:
    peer_public: bytes
    chaining_key: bytes
    hash: bytes
    remote_ephemeral: bytes
    remote_index: int
    timestamp: bytes


def consume_initiation(identity: Identity, msg: Initiation,
                       lookup: Callable[[bytes], PeerSecrets | None]) -> ConsumedInitiation:
    """Authenticate an initiation; ``lookup`` finds the peer by the static key it carries.

    Raises HandshakeError when it does not decrypt or names no peer of ours. The caller checks the timestamp
    against the peer's last one (replay) and the initiation rate (flood) before accepting it.
    """
    ck = INITIAL_CHAINING_KEY
    h = identity.responder_hash
    ck = crypto.kdf1(ck, msg.ephemeral)
    h = crypto.hash_(h, msg.ephemeral)
    try:
        ck, key = crypto.kdf2(ck, crypto.dh(identity.private, msg.ephemeral))
        peer_public = crypto.aead_decrypt(key, 0, msg.encrypted_static, h)
    except (ValueError, crypto.InvalidTag):
        raise HandshakeError("initiation does not decrypt") from None
    h = crypto.hash_(h, msg.encrypted_static)
    peer = lookup(peer_public)
    if peer is None:
        raise HandshakeError("initiation from an unknown public key")
    if peer.static_static == ZERO_KEY:
        raise HandshakeError("the peer's public key is of low order")
    ck, key = crypto.kdf2(ck, peer.static_static)
    try:
        timestamp = crypto.aead_decrypt(key, 0, msg.encrypted_timestamp, h)
    except crypto.InvalidTag:
        raise HandshakeError("initiation timestamp does not decrypt") from None
    h = crypto.hash_(h, msg.encrypted_timestamp)
    return ConsumedInitiation(peer_public, ck, h, msg.ephemeral, msg.sender, timestamp)


def accept_initiation(hs: Handshake, consumed: ConsumedInitiation) -> None:
    hs.clear()
    hs.state = State.CONSUMED_INITIATION
    hs.chaining_key, hs.hash = consumed.chaining_key, consumed.hash
    hs.remote_ephemeral = consumed.remote_ephemeral
    hs.remote_index = consumed.remote_index


def create_response(peer: PeerSecrets, hs: Handshake, ephemeral_private: bytes, sender_index: int) -> Response:
    """The responder's message, after ``accept_initiation``. Leaves ``hs`` in CREATED_RESPONSE."""
    if hs.state is not State.CONSUMED_INITIATION:
        raise HandshakeError("no initiation to respond to")
    ck, h = hs.chaining_key, hs.hash
    # (Epriv_r, Epub_r) := DH-GENERATE(); Cr := KDF1(Cr, Epub_r)
    # msg.ephemeral := Epub_r; Hr := HASH(Hr || msg.ephemeral)
    eph = X25519PrivateKey.from_private_bytes(ephemeral_private)
    eph_pub = raw_public(eph)
    ck = crypto.kdf1(ck, eph_pub)
    h = crypto.hash_(h, eph_pub)
    try:
        # Cr := KDF1(Cr, DH(Epriv_r, Epub_i)); Cr := KDF1(Cr, DH(Epriv_r, Spub_i))
        ck = crypto.kdf1(ck, crypto.dh(eph, hs.remote_ephemeral))
        ck = crypto.kdf1(ck, crypto.dh(eph, peer.public))
    except ValueError:
        raise HandshakeError("low-order ephemeral key") from None
    # (Cr, τ, κ) := KDF3(Cr, Q); Hr := HASH(Hr || τ); msg.empty := AEAD(κ, 0, ε, Hr); Hr := HASH(Hr || msg.empty)
    ck, tau, key = crypto.kdf3(ck, peer.preshared_key)
    h = crypto.hash_(h, tau)
    empty = crypto.aead_encrypt(key, 0, b"", h)
    h = crypto.hash_(h, empty)
    hs.chaining_key, hs.hash = ck, h
    hs.local_ephemeral = eph
    hs.local_index = sender_index
    hs.state = State.CREATED_RESPONSE
    return Response(sender_index, hs.remote_index, eph_pub, empty)


def consume_response(identity: Identity, peer: PeerSecrets, hs: Handshake, msg: Response) -> None:
    """Authenticate the response to our initiation. Leaves ``hs`` in CONSUMED_RESPONSE or raises HandshakeError."""
    if hs.state is not State.CREATED_INITIATION or hs.local_ephemeral is None:
        raise HandshakeError("response without an initiation of ours")
    ck, h = hs.chaining_key, hs.hash
    ck = crypto.kdf1(ck, msg.ephemeral)
    h = crypto.hash_(h, msg.ephemeral)
    try:
        ck = crypto.kdf1(ck, crypto.dh(hs.local_ephemeral, msg.ephemeral))
        ck = crypto.kdf1(ck, crypto.dh(identity.private, msg.ephemeral))
    except ValueError:
        raise HandshakeError("low-order ephemeral key") from None
    ck, tau, key = crypto.kdf3(ck, peer.preshared_key)
    h = crypto.hash_(h, tau)
    try:
        crypto.aead_decrypt(key, 0, msg.encrypted_nothing, h)
    except crypto.InvalidTag:
        raise HandshakeError("response does not decrypt") from None
    h = crypto.hash_(h, msg.encrypted_nothing)
    hs.chaining_key, hs.hash = ck, h
    hs.remote_ephemeral = msg.ephemeral
    hs.remote_index = msg.sender
    hs.state = State.CONSUMED_RESPONSE


@dataclass(frozen=True, slots=True)
class SessionKeys:
    send: bytes
    receive: bytes
    initiator: bool
    local_index: int
    remote_index: int


def derive_transport_keys(hs: Handshake) -> SessionKeys:
    """The transport keys of a completed handshake; zeroes the handshake state.

    (Tsend_i = Trecv_r, Trecv_i = Tsend_r) := KDF2(Ci = Cr, ε)
    """
    if hs.state is State.CONSUMED_RESPONSE:
        first, second = crypto.kdf2(hs.chaining_key, b"")
        keys = SessionKeys(first, second, True, hs.local_index, hs.remote_index)
    elif hs.state is State.CREATED_RESPONSE:
        first, second = crypto.kdf2(hs.chaining_key, b"")
        keys = SessionKeys(second, first, False, hs.local_index, hs.remote_index)
    else:
        raise HandshakeError("no completed handshake to derive keys from")
    hs.clear()
    return keys
