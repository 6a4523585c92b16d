"""The primitives of the WireGuard construction (whitepaper 5.4), over `cryptography` and hashlib.

HASH and MAC are BLAKE2s, HMAC is HMAC-BLAKE2s, KDF is HKDF over HMAC-BLAKE2s, AEAD is ChaCha20-Poly1305 with a
64-bit little-endian counter nonce, XAEAD is XChaCha20-Poly1305 (built here from HChaCha20 + ChaCha20-Poly1305,
since `cryptography` lacks it), DH is X25519.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = [
    "InvalidTag", "aead_decrypt", "aead_encrypt", "counter_nonce", "dh", "hash_", "hchacha20", "hmac", "kdf1",
    "kdf2", "kdf3", "mac", "xaead_decrypt", "xaead_encrypt",
]

_ZERO_NONCE_PREFIX = b"\x00\x00\x00\x00"
_COUNTER = struct.Struct("<Q")
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


def hash_(*parts: bytes) -> bytes:
    """HASH(input): BLAKE2s-256 over the concatenation of ``parts``."""
    h = hashlib.blake2s()
    for p in parts:
        h.update(p)
    return h.digest()


def mac(key: bytes, data: bytes) -> bytes:
    """MAC(key, input): keyed BLAKE2s with a 16-byte output."""
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


def hmac(key: bytes, data: bytes) -> bytes:
    """HMAC(key, input): HMAC-BLAKE2s-256."""
    return _hmac.new(key, data, hashlib.blake2s).digest()


def kdf1(key: bytes, data: bytes) -> bytes:
    t0 = hmac(key, data)
    return hmac(t0, b"\x01")


def kdf2(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    t0 = hmac(key, data)
    t1 = hmac(t0, b"\x01")
    return t1, hmac(t0, t1 + b"\x02")


def kdf3(key: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:
    t0 = hmac(key, data)
    t1 = hmac(t0, b"\x01")
    t2 = hmac(t0, t1 + b"\x02")
    return t1, t2, hmac(t0, t2 + b"\x03")


def dh(private_key: X25519PrivateKey, public_key: bytes) -> bytes:
    """DH(private, public). Raises ValueError for a low-order public key (an all-zero shared secret)."""
    return private_key.exchange(X25519PublicKey.from_public_bytes(public_key))


def counter_nonce(counter: int) -> bytes:
    """The 96-bit AEAD nonce: 32 zero bits then the 64-bit little-endian counter."""
    return _ZERO_NONCE_PREFIX + _COUNTER.pack(counter)


def aead_encrypt(key: bytes, counter: int, plaintext: bytes, aad: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(counter_nonce(counter), plaintext, aad)


def aead_decrypt(key: bytes, counter: int, ciphertext: bytes, aad: bytes) -> bytes:
    """Raises ``InvalidTag`` when the ciphertext does not authenticate."""
    return ChaCha20Poly1305(key).decrypt(counter_nonce(counter), ciphertext, aad)


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha section 2.2).

    One ChaCha20 block is (rounds(state) + state); with the 16-byte nonce in words 12..15 as the state's
    counter||nonce, subtracting the known input words from the keystream leaves rounds(state), whose words 0..3
    and 12..15 are HChaCha20's output.
    """
    if len(key) != 32 or len(nonce16) != 16:
        raise ValueError("hchacha20 needs a 32-byte key and a 16-byte nonce")
    block = Cipher(algorithms.ChaCha20(key, nonce16), mode=None).encryptor().update(bytes(64))
    w = struct.unpack("<16I", block)
    n = struct.unpack("<4I", nonce16)
    out = [(w[i] - _SIGMA[i]) & 0xFFFFFFFF for i in range(4)]
    out += [(w[12 + i] - n[i]) & 0xFFFFFFFF for i in range(4)]
    return struct.pack("<8I", *out)


def _xchacha_parts(key: bytes, nonce24: bytes) -> tuple[bytes, bytes]:
    if len(nonce24) != 24:
        raise ValueError("XChaCha20-Poly1305 needs a 24-byte nonce")
    return hchacha20(key, nonce24[:16]), _ZERO_NONCE_PREFIX + nonce24[16:]


def xaead_encrypt(key: bytes, nonce24: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """XChaCha20-Poly1305 encryption: ciphertext || tag."""
    subkey, nonce = _xchacha_parts(key, nonce24)
    return ChaCha20Poly1305(subkey).encrypt(nonce, plaintext, aad)


def xaead_decrypt(key: bytes, nonce24: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """XChaCha20-Poly1305 decryption. Raises ``InvalidTag`` when it does not authenticate."""
    subkey, nonce = _xchacha_parts(key, nonce24)
    return ChaCha20Poly1305(subkey).decrypt(nonce, ciphertext, aad)
