"""The datagrams gateways exchange for failover (docs/HA.md): pure encode and decode.

- ``Announcement`` (rule 7): the new active tells the agent of every remote gateway, over its own tunnel.
- ``RelayRequest``/``RelayReply`` (rule 4): a standby asks a witness (a remote gateway's agent) to probe its sibling
  through the witness's tunnel, and the witness answers whether the sibling did.
- ``Probe``/``ProbeReply``: what a prober sends a gateway's agent, and the agent's echo (when the agent is dead,
  its kernel's port unreachable answers instead: the prober's I/O reports it).

The tunnel authenticates them (only a gateway's own session may carry its tunnel address as source), so they carry
no MAC; the receivers' checks are in ``linker.gateway.actives`` and ``linker.gateway.probing``. Layout, big-endian,
nothing after the last field::

    magic 4 bytes b"LKHA" | version 1 byte (1) | type 1 byte | a 64-bit number (epoch or nonce) | the type's fields

    1 announce       epoch >= 1; link, site, instance: each 1 byte length (1..63) + that many of [A-Za-z0-9._-]
    2 relay request  nonce; the sibling's tunnel address: 1 byte length (4 or 16) + the address
    3 relay reply    nonce; 1 byte: 1 the sibling answered, 0 it did not
    4 probe          nonce
    5 probe reply    nonce

``decode`` raises ``FailoverWireError`` for anything else and never raises another exception, whatever the bytes:
a hostile datagram is dropped (logged at debug by the caller), never answered, never fatal. Pure and thread-safe.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

from linker.errors import ContractError

MAGIC = b"LKHA"
VERSION = 1
TYPE_ANNOUNCE, TYPE_RELAY_REQUEST, TYPE_RELAY_REPLY, TYPE_PROBE, TYPE_PROBE_REPLY = 1, 2, 3, 4, 5
MAX_NAME = 63
_HEAD = struct.Struct("!4sBBQ")
MAX_SIZE = _HEAD.size + 3 * (1 + MAX_NAME)  # 206 bytes, the largest announcement: far below any tunnel MTU
_MAX_U64 = 2**64 - 1
_NAME = re.compile(r"[A-Za-z0-9._-]{1,63}")


class FailoverWireError(ContractError):
    """A datagram is not a valid failover message (or a value cannot be encoded as one)."""

    kind = "failover_wire_error"


def _check_u64(what: str, value: object, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_U64:
        raise FailoverWireError(f"a {what} is an integer from {low} to 2**64-1, not {value!r}")


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FailoverWireError(f"an announcement's {what} is 1 to {MAX_NAME} characters of [A-Za-z0-9._-], "
                                f"not {name!r}")


@dataclass(frozen=True)
class Announcement:
    """``instance`` is the active gateway of ``site`` in ``link`` since the record version ``epoch``."""

    link: str
    site: str
    instance: str
    epoch: int

    def __post_init__(self) -> None:
        for what, name in (("link", self.link), ("site", self.site), ("instance", self.instance)):
            _check_name(what, name)
        _check_u64("announcement's epoch", self.epoch, low=1)


@dataclass(frozen=True)
class RelayRequest:
    """Probe ``target`` (the requester's sibling's tunnel address) and tell me, quoting ``nonce``."""

    nonce: int
    target: str

    def __post_init__(self) -> None:
        _check_u64("nonce", self.nonce)
        try:
            if not isinstance(self.target, str):
                raise ValueError
            ipaddress.ip_address(self.target)
        except ValueError:
            raise FailoverWireError(f"a relay request's target is an IP address, not {self.target!r}") from None


@dataclass(frozen=True)
class RelayReply:
    nonce: int
    answered: bool

    def __post_init__(self) -> None:
        _check_u64("nonce", self.nonce)


@dataclass(frozen=True)
class Probe:
    nonce: int

    def __post_init__(self) -> None:
        _check_u64("nonce", self.nonce)


@dataclass(frozen=True)
class ProbeReply:
    nonce: int

    def __post_init__(self) -> None:
        _check_u64("nonce", self.nonce)


Message = Announcement | RelayRequest | RelayReply | Probe | ProbeReply


def encode(message: Message) -> bytes:
    """The datagram of ``message`` (at most ``MAX_SIZE`` bytes)."""
    if isinstance(message, Announcement):
        out = bytearray(_HEAD.pack(MAGIC, VERSION, TYPE_ANNOUNCE, message.epoch))
        for name in (message.link, message.site, message.instance):
            raw = name.encode("ascii")
            out += bytes([len(raw)]) + raw
        return bytes(out)
    if isinstance(message, RelayRequest):
        packed = ipaddress.ip_address(message.target).packed
        return _HEAD.pack(MAGIC, VERSION, TYPE_RELAY_REQUEST, message.nonce) + bytes([len(packed)]) + packed
    if isinstance(message, RelayReply):
        return _HEAD.pack(MAGIC, VERSION, TYPE_RELAY_REPLY, message.nonce) + bytes([int(message.answered)])
    kind = TYPE_PROBE if isinstance(message, Probe) else TYPE_PROBE_REPLY
    return _HEAD.pack(MAGIC, VERSION, kind, message.nonce)


def decode(data: bytes) -> Message:
    """The message in ``data``. Raises FailoverWireError when ``data`` is anything but one valid message of this
    version (a newer version is refused by name, so that a mixed-version link is visible in the log)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FailoverWireError("a failover message is bytes")
    data = bytes(data)
    if len(data) > MAX_SIZE:
        raise FailoverWireError(f"a failover message is at most {MAX_SIZE} bytes, not {len(data)}")
    if len(data) < _HEAD.size:
        raise FailoverWireError(f"a failover message is at least {_HEAD.size} bytes, not {len(data)}")
    magic, version, kind, number = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise FailoverWireError("not a failover message (bad magic)")
    if version != VERSION:
        raise FailoverWireError(f"a failover message of version {version}; this linker reads version {VERSION}")
    body = data[_HEAD.size:]
    if kind == TYPE_ANNOUNCE:
        return _announcement(number, body)
    if kind == TYPE_RELAY_REQUEST:
        if len(body) not in (5, 17) or body[0] != len(body) - 1:
            raise FailoverWireError("a relay request's target is not a 4- or 16-byte address")
        return RelayRequest(number, str(ipaddress.ip_address(body[1:])))
    if kind == TYPE_RELAY_REPLY:
        if len(body) != 1 or body[0] > 1:
            raise FailoverWireError("a relay reply ends with one byte, 0 or 1")
        return RelayReply(number, body[0] == 1)
    if kind in (TYPE_PROBE, TYPE_PROBE_REPLY):
        if body:
            raise FailoverWireError(f"a probe has {len(body)} bytes after its nonce")
        return Probe(number) if kind == TYPE_PROBE else ProbeReply(number)
    raise FailoverWireError(f"unknown message type {kind}")


def _announcement(epoch: int, body: bytes) -> Announcement:
    names: list[str] = []
    pos = 0
    for what in ("link", "site", "instance"):
        if pos >= len(body):
            raise FailoverWireError(f"an announcement ends before its {what}")
        size = body[pos]
        raw = body[pos + 1:pos + 1 + size]
        if len(raw) != size:
            raise FailoverWireError(f"an announcement's {what} is cut short")
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            raise FailoverWireError(f"an announcement's {what} is not ASCII") from None
        _check_name(what, name)
        names.append(name)
        pos += 1 + size
    if pos != len(body):
        raise FailoverWireError(f"an announcement has {len(body) - pos} bytes after its last field")
    return Announcement(names[0], names[1], names[2], epoch)
