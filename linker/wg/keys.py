"""WireGuard keys: 32-byte Curve25519 keys, base64 on the outside (as `wg genkey` / `wg pubkey`)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from linker.wg.constants import KEY_LEN


def clamp(key: bytes) -> bytes:
    """Curve25519 scalar clamping, as `wg genkey` applies it."""
    b = bytearray(key)
    b[0] &= 248
    b[31] = (b[31] & 127) | 64
    return bytes(b)


def generate_private_key(rng: Callable[[int], bytes]) -> bytes:
    return clamp(rng(KEY_LEN))


def generate_preshared_key(rng: Callable[[int], bytes]) -> bytes:
    return rng(KEY_LEN)


def public_key_of(private_key: bytes) -> bytes:
    check_len(private_key)
    pk = X25519PrivateKey.from_private_bytes(private_key).public_key()
    return pk.public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_len(key: bytes) -> None:
    if len(key) != KEY_LEN:
        raise ValueError(f"a WireGuard key is {KEY_LEN} bytes, not {len(key)}")


def to_base64(key: bytes) -> str:
    check_len(key)
    return base64.b64encode(key).decode("ascii")


def from_base64(text: str) -> bytes:
    """Decode a base64 key. Raises ValueError (without echoing the input: it may be secret)."""
    text = text.strip()
    if len(text) != 44 or not text.endswith("="):
        raise ValueError("a key is 44 characters of base64 ending in '='")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a key is 44 characters of base64 ending in '='") from None
    check_len(key)
    return key


def to_hex(key: bytes) -> str:
    check_len(key)
    return key.hex()


def from_hex(text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("a hex key is 64 hexadecimal digits") from None
    check_len(key)
    return key


def short(public_key: bytes) -> str:
    """A peer's name in logs: the first characters of its base64 public key (never a private key)."""
    return base64.b64encode(public_key).decode("ascii")[:8]
