"""Fuzz targets: every parser that the network or the UAPI socket reaches, as ``one_input(data: bytes)``.

Each target feeds hostile bytes to linker's own code the way the daemon does and fails (raises) only on what would
be a bug: an exception that escapes, an invariant of the device broken, a table that grows without bound. Declared
refusals (``ConfigError`` for a bad file, an ``errno`` answer on the UAPI) are the expected outcome, not a bug.

The targets are pure Python and deterministic (seeded randomness, a fake clock), so the atheris driver (run.py)
and hypothesis (test_fuzz.py) share them. State persists across inputs of one process on purpose: a datagram may
land on a device that earlier inputs have pushed into an odd state, as on the internet.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from linker.dataplane import offload
from linker.dataplane.config import parse
from linker.dataplane.uapi import complete_request, handle_request
from linker.errors import LinkerError
from linker.wg import crypto
from linker.wg.constants import LABEL_MAC1, MESSAGE_INITIATION, MESSAGE_RESPONSE, MESSAGE_TRANSPORT
from linker.wg.session import Keypair
from tests.pair.harness import Pair

HOSTILE = ("203.0.113.13", 4444)
MAX_INDICES = 64  # a handful of peers' sessions and handshakes; hostile input must never add to the table
MAX_REQUEST_BYTES = 1 << 16


class _FakeHost:
    """What the UAPI may change on the daemon around the device: the port and the fwmark."""

    listen_port = 51820
    fwmark = 0

    def rebind(self, port: int) -> None:
        self.listen_port = port

    def set_fwmark(self, mark: int) -> None:
        self.fwmark = mark


class _World:
    """An established pair (a <-> b); the inputs arrive at b, from a stranger or with a's endpoint."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pair = Pair(seed=11)
        self.pair.send("a", b"one")
        self.pair.send("b", b"two")
        self.pair.advance(1)
        self.mac1_key = crypto.hash_(LABEL_MAC1, self.pair.b.public_key)
        self.inputs = 0

    def live_index(self, pick: int) -> int | None:
        """A receiver index b knows (a session or a handshake), so that transport messages reach the AEAD."""
        keys = sorted(i for i, v in self.pair.b._indices.items() if isinstance(v, Keypair))
        return keys[pick % len(keys)] if keys else None

    def check(self) -> None:
        b = self.pair.b
        b.check_invariants()
        if len(b._indices) > MAX_INDICES:
            raise AssertionError(f"the index table grew to {len(b._indices)} entries on hostile input")
        self.inputs += 1
        if self.inputs % 5000 == 0:  # now and then a fresh pair, so that the easy states are visited again
            self.reset()


WORLD = _World()


def datagram(data: bytes) -> None:
    """Raw bytes at b's UDP port, through both receive paths (the general one and the one-packet fast path)."""
    p = WORLD.pair
    src = p.endpoints["a"] if len(data) % 2 else HOSTILE  # from a stranger, or spoofing the peer's endpoint
    p.b.decapsulate(data, src, p.clock.now)
    p.b.open_one(data, src, p.clock.now)
    WORLD.check()


def datagram_fixed(data: bytes) -> None:
    """As ``datagram``, with the parts a stranger cannot guess fixed up, so that the input gets past them: a
    valid MAC1 on handshake messages (it is keyed by b's public key, which is public), a live receiver index on
    transport messages. What follows (noise, the AEAD, the replay window, the inner packet) sees the fuzzer's bytes."""
    p, buf = WORLD.pair, bytearray(data)
    kind = buf[0] if buf else 0
    if kind in (MESSAGE_INITIATION, MESSAGE_RESPONSE) and len(buf) >= 32:
        buf[1:4] = b"\0\0\0"
        body = len(buf) - 32
        buf[body:body + 16] = crypto.mac(WORLD.mac1_key, bytes(buf[:body]))
    elif kind == MESSAGE_TRANSPORT and len(buf) >= 16:
        buf[1:4] = b"\0\0\0"
        index = WORLD.live_index(buf[4])
        if index is not None:
            struct.pack_into("<I", buf, 4, index)
    for _ in range(buf[-1] % 3 if buf else 0):  # time moves on between some inputs: timers, rekeys, expiry
        p.advance(0.5 + (buf[-1] >> 2), step=1.0)
    datagram(bytes(buf))


_UAPI_DEVICE = Pair(seed=12).b
_UAPI_HOST = _FakeHost()


def uapi(data: bytes) -> None:
    """A client's bytes on the UAPI socket: the framing, then each complete request (get or set)."""
    try:
        size = complete_request(data[:MAX_REQUEST_BYTES])
    except ValueError:
        return  # an unknown operation: the server drops that client (UapiServer.readable), as it should
    if size > 0:
        request = data[:size].decode("utf-8", "replace")
        reply, _, _ = handle_request(_UAPI_DEVICE, _UAPI_HOST, request, 1000.0)
        if not reply.endswith("\n\n") or "errno=" not in reply:
            raise AssertionError(f"a malformed UAPI reply: {reply[-80:]!r}")
        _UAPI_DEVICE.check_invariants()
        if len(_UAPI_DEVICE.peers) > 5000:  # a client may add peers (root only); bound the fuzzer's own growth
            for key in list(_UAPI_DEVICE.peers)[2:]:
                _UAPI_DEVICE.remove_peer(key)


def config(data: bytes) -> None:
    """A configuration file (wg-quick's format): parsed, or refused with a ConfigError naming the line."""
    try:
        parse(data.decode("utf-8", "replace"), "<fuzz>")
    except LinkerError:
        pass


def coalesce(data: bytes) -> None:
    """Decrypted packets (a peer chooses their bytes) grouped into TUN writes: every byte kept, none invented."""
    rng = random.Random(data[:4])
    packets, rest = [], data[4:]
    while rest:
        cut = rng.randrange(1, 1600)
        packets.append(rest[:cut])
        rest = rest[cut:]
    writes = offload.coalesce(packets)
    if len(writes) > len(packets) or any(not w for w in writes):
        raise AssertionError("coalesce made more (or empty) TUN writes than the packets it was given")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "datagram": datagram, "datagram_fixed": datagram_fixed, "uapi": uapi, "config": config, "coalesce": coalesce,
}
