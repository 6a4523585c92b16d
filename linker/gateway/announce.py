"""The in-band announcement of a site's new active gateway (docs/HA.md, rule 7): pure encode and decode.

The new active sends it over its own WireGuard tunnel to the agent of every remote gateway. The tunnel is what
authenticates it (only that gateway's session may carry its tunnel address as source), so the datagram carries no
MAC; the receiver's checks are in ``linker.gateway.actives``. Layout, big-endian, nothing after the last field::

    magic   4 bytes  b"LKHA"
    version 1 byte   1
    type    1 byte   1 (announce)
    epoch   8 bytes  unsigned, >= 1 (the SSM version of the site's active record)
    link, site, instance: each 1 byte length (1..63) then that many bytes of [A-Za-z0-9._-]

``decode`` raises ``AnnouncementError`` for anything else and never raises another exception, whatever the bytes:
a hostile datagram is dropped (logged at debug by the caller), never answered, never fatal. Pure and thread-safe.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from linker.errors import ContractError

MAGIC = b"LKHA"
VERSION = 1
TYPE_ANNOUNCE = 1
MAX_NAME = 63
_HEAD = struct.Struct("!4sBBQ")
MAX_SIZE = _HEAD.size + 3 * (1 + MAX_NAME)  # 206 bytes: one datagram, far below any tunnel MTU
_MAX_EPOCH = 2**64 - 1
_NAME = re.compile(r"[A-Za-z0-9._-]{1,63}")


class AnnouncementError(ContractError):
    """A datagram is not a valid announcement (or a value cannot be encoded as one)."""

    kind = "announcement_error"


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
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int) or not 1 <= self.epoch <= _MAX_EPOCH:
            raise AnnouncementError(f"an announcement's epoch is an integer from 1 to 2**64-1, not {self.epoch!r}")


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise AnnouncementError(f"an announcement's {what} is 1 to {MAX_NAME} characters of [A-Za-z0-9._-], "
                                f"not {name!r}")


def encode(announcement: Announcement) -> bytes:
    """The datagram of ``announcement`` (at most ``MAX_SIZE`` bytes)."""
    out = bytearray(_HEAD.pack(MAGIC, VERSION, TYPE_ANNOUNCE, announcement.epoch))
    for name in (announcement.link, announcement.site, announcement.instance):
        raw = name.encode("ascii")
        out.append(len(raw))
        out += raw
    return bytes(out)


def decode(data: bytes) -> Announcement:
    """The announcement in ``data``. Raises AnnouncementError when ``data`` is anything but one valid announcement
    of this version (a newer version is refused by name, so that a mixed-version link is visible in the log)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AnnouncementError("an announcement is bytes")
    data = bytes(data)
    if len(data) > MAX_SIZE:
        raise AnnouncementError(f"an announcement is at most {MAX_SIZE} bytes, not {len(data)}")
    if len(data) < _HEAD.size:
        raise AnnouncementError(f"an announcement is at least {_HEAD.size} bytes, not {len(data)}")
    magic, version, kind, epoch = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise AnnouncementError("not an announcement (bad magic)")
    if version != VERSION:
        raise AnnouncementError(f"an announcement of version {version}; this linker reads version {VERSION}")
    if kind != TYPE_ANNOUNCE:
        raise AnnouncementError(f"unknown message type {kind}")
    names: list[str] = []
    pos = _HEAD.size
    for what in ("link", "site", "instance"):
        if pos >= len(data):
            raise AnnouncementError(f"an announcement ends before its {what}")
        size = data[pos]
        raw = data[pos + 1:pos + 1 + size]
        if len(raw) != size:
            raise AnnouncementError(f"an announcement's {what} is cut short")
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            raise AnnouncementError(f"an announcement's {what} is not ASCII") from None
        _check_name(what, name)
        names.append(name)
        pos += 1 + size
    if pos != len(data):
        raise AnnouncementError(f"an announcement has {len(data) - pos} bytes after its last field")
    return Announcement(names[0], names[1], names[2], epoch)
