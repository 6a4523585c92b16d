"""The four WireGuard message layouts (whitepaper 5.4.2 - 5.4.6): encode and decode, nothing else.

The first four bytes of every message are the type as a little-endian u32: the type byte then three reserved
zero bytes. A message with non-zero reserved bytes has no valid type, as in wireguard-go.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from linker.wg.constants import (
    MESSAGE_COOKIE_REPLY,
    MESSAGE_COOKIE_REPLY_SIZE,
    MESSAGE_INITIATION,
    MESSAGE_INITIATION_SIZE,
    MESSAGE_RESPONSE,
    MESSAGE_RESPONSE_SIZE,
    MESSAGE_TRANSPORT,
    MESSAGE_TRANSPORT_HEADER_SIZE,
)

_INITIATION = struct.Struct("<II32s48s28s16s16s")
_RESPONSE = struct.Struct("<III32s16s16s16s")
_COOKIE_REPLY = struct.Struct("<II24s32s")
TRANSPORT_HEADER = struct.Struct("<IIQ")
_TYPE = struct.Struct("<I")

assert _INITIATION.size == MESSAGE_INITIATION_SIZE
assert _RESPONSE.size == MESSAGE_RESPONSE_SIZE
assert _COOKIE_REPLY.size == MESSAGE_COOKIE_REPLY_SIZE
assert TRANSPORT_HEADER.size == MESSAGE_TRANSPORT_HEADER_SIZE


class MessageError(ValueError):
    """A datagram that is not a well-formed message of the type it claims."""


def message_type(data: bytes) -> int:
    """The message type, or 0 when ``data`` is too short to carry one."""
    if len(data) < 4:
        return 0
    return _TYPE.unpack_from(data)[0]


@dataclass(frozen=True, slots=True)
class Initiation:
    sender: int
    ephemeral: bytes
    encrypted_static: bytes
    encrypted_timestamp: bytes
    mac1: bytes = bytes(16)
    mac2: bytes = bytes(16)

    def encode(self) -> bytes:
        return _INITIATION.pack(MESSAGE_INITIATION, self.sender, self.ephemeral, self.encrypted_static,
                                self.encrypted_timestamp, self.mac1, self.mac2)

    @classmethod
    def decode(cls, data: bytes) -> Initiation:
        if len(data) != MESSAGE_INITIATION_SIZE:
            raise MessageError(f"initiation is {MESSAGE_INITIATION_SIZE} bytes, got {len(data)}")
        t, sender, eph, static, ts, m1, m2 = _INITIATION.unpack(data)
        if t != MESSAGE_INITIATION:
            raise MessageError("not an initiation")
        return cls(sender, eph, static, ts, m1, m2)


@dataclass(frozen=True, slots=True)
class Response:
    sender: int
    receiver: int
    ephemeral: bytes
    encrypted_nothing: bytes
    mac1: bytes = bytes(16)
    mac2: bytes = bytes(16)

    def encode(self) -> bytes:
        return _RESPONSE.pack(MESSAGE_RESPONSE, self.sender, self.receiver, self.ephemeral,
                              self.encrypted_nothing, self.mac1, self.mac2)

    @classmethod
    def decode(cls, data: bytes) -> Response:
        if len(data) != MESSAGE_RESPONSE_SIZE:
            raise MessageError(f"response is {MESSAGE_RESPONSE_SIZE} bytes, got {len(data)}")
        t, sender, receiver, eph, nothing, m1, m2 = _RESPONSE.unpack(data)
        if t != MESSAGE_RESPONSE:
            raise MessageError("not a response")
        return cls(sender, receiver, eph, nothing, m1, m2)


@dataclass(frozen=True, slots=True)
class CookieReply:
    receiver: int
    nonce: bytes
    encrypted_cookie: bytes

    def encode(self) -> bytes:
        return _COOKIE_REPLY.pack(MESSAGE_COOKIE_REPLY, self.receiver, self.nonce, self.encrypted_cookie)

    @classmethod
    def decode(cls, data: bytes) -> CookieReply:
        if len(data) != MESSAGE_COOKIE_REPLY_SIZE:
            raise MessageError(f"cookie reply is {MESSAGE_COOKIE_REPLY_SIZE} bytes, got {len(data)}")
        t, receiver, nonce, enc = _COOKIE_REPLY.unpack(data)
        if t != MESSAGE_COOKIE_REPLY:
            raise MessageError("not a cookie reply")
        return cls(receiver, nonce, enc)


@dataclass(frozen=True, slots=True)
class TransportHeader:
    receiver: int
    counter: int

    def encode(self) -> bytes:
        return TRANSPORT_HEADER.pack(MESSAGE_TRANSPORT, self.receiver, self.counter)

    @classmethod
    def decode(cls, data: bytes) -> TransportHeader:
        if len(data) < MESSAGE_TRANSPORT_HEADER_SIZE:
            raise MessageError("transport message shorter than its header")
        t, receiver, counter = TRANSPORT_HEADER.unpack_from(data)
        if t != MESSAGE_TRANSPORT:
            raise MessageError("not a transport message")
        return cls(receiver, counter)
