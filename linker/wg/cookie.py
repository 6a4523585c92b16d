"""MAC1, MAC2 and cookie replies (whitepaper 5.4.4 and 5.4.7): the protection against handshake floods.

``CookieChecker`` is the receiving side of one device: it verifies MAC1 (keyed by our own public key), MAC2 (keyed
by a cookie that only a sender who can receive at its source address knows) and makes cookie replies.
``CookieGenerator`` is the sending side towards one peer: it adds MAC1 and MAC2 to our handshake messages and
consumes the peer's cookie replies.
"""

from __future__ import annotations

import hmac as _hmac
import ipaddress
from collections.abc import Callable

from linker.wg import crypto
from linker.wg.constants import COOKIE_REFRESH_TIME, LABEL_COOKIE, LABEL_MAC1
from linker.wg.messages import CookieReply

MAC_SIZE = 16
MAX_CACHED_COOKIES = 4096  # a flood from many sources clears the cache rather than growing it


def source_bytes(endpoint: tuple) -> bytes:
    """The bytes a cookie is bound to: the source address and port."""
    return ipaddress.ip_address(endpoint[0]).packed + int(endpoint[1]).to_bytes(2, "big")


class CookieChecker:
    """Verifies MAC1/MAC2 on handshake messages sent to us and builds cookie replies. Not thread-safe."""

    def __init__(self, public_key: bytes, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self._mac1_key = crypto.hash_(LABEL_MAC1, public_key)
        self._cookie_key = crypto.hash_(LABEL_COOKIE, public_key)
        self._secret = b""
        self._secret_set = float("-inf")
        self._cookies: dict[tuple, bytes] = {}  # source -> its cookie under the current secret (under load, the
        # same sources send again and again: one MAC per source and secret, not one per message)

    def check_mac1(self, msg: bytes) -> bool:
        expected = crypto.mac(self._mac1_key, msg[:-32])
        return _hmac.compare_digest(expected, msg[-32:-16])

    def _cookie(self, src: tuple, now: float) -> bytes:
        if now - self._secret_set > COOKIE_REFRESH_TIME:
            self._secret = self._rng(32)
            self._secret_set = now
            self._cookies = {}
        key = (src[0], src[1])
        cookie = self._cookies.get(key)
        if cookie is None:
            if len(self._cookies) >= MAX_CACHED_COOKIES:
                self._cookies = {}
            cookie = self._cookies[key] = crypto.mac(self._secret, source_bytes(src))
        return cookie

    def check_mac2(self, msg: bytes, src: tuple, now: float) -> bool:
        expected = crypto.mac(self._cookie(src, now), msg[:-16])
        return _hmac.compare_digest(expected, msg[-16:])

    def create_reply(self, msg: bytes, sender_index: int, src: tuple, now: float) -> bytes:
        """A cookie reply to a handshake message ``msg`` whose sender used ``sender_index``."""
        nonce = self._rng(24)
        mac1 = msg[-32:-16]
        encrypted = crypto.xaead_encrypt(self._cookie_key, nonce, self._cookie(src, now), mac1)
        return CookieReply(sender_index, nonce, encrypted).encode()


class CookieGenerator:
    """Adds MACs to the handshake messages we send to one peer; consumes that peer's cookie replies."""

    def __init__(self, peer_public_key: bytes) -> None:
        self._mac1_key = crypto.hash_(LABEL_MAC1, peer_public_key)
        self._cookie_key = crypto.hash_(LABEL_COOKIE, peer_public_key)
        self._cookie = b""
        self._cookie_set = float("-inf")
        self._last_mac1: bytes | None = None

    def add_macs(self, msg: bytearray, now: float) -> None:
        """Fill the last 32 bytes of ``msg`` (MAC1 then MAC2) in place."""
        mac1 = crypto.mac(self._mac1_key, bytes(msg[:-32]))
        msg[-32:-16] = mac1
        self._last_mac1 = mac1
        if self._cookie and now - self._cookie_set <= COOKIE_REFRESH_TIME:
            msg[-16:] = crypto.mac(self._cookie, bytes(msg[:-16]))
        else:
            msg[-16:] = bytes(MAC_SIZE)

    def consume_reply(self, reply: CookieReply, now: float) -> bool:
        """Take the cookie from ``reply``; False if it does not answer our last message or fails to decrypt."""
        if self._last_mac1 is None:
            return False
        try:
            cookie = crypto.xaead_decrypt(self._cookie_key, reply.nonce, reply.encrypted_cookie, self._last_mac1)
        except crypto.InvalidTag:
            return False
        self._cookie = cookie
        self._cookie_set = now
        self._last_mac1 = None
        return True
