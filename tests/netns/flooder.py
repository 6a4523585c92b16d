"""A bounded handshake flood: WireGuard initiations with a valid MAC1 (random otherwise), from many source
addresses, at a paced rate for a fixed time; counts the cookie replies each source gets back.

    python -m tests.netns.flooder --target 203.0.113.1:51820 --public-key B64 --sources 203.0.113.100/64 \
        --rate 40000 --seconds 10

Run it inside a namespace of a test (its sources are TEST-NET addresses the test put on the namespace's link).
Prints one JSON object: sent, seconds, rate achieved, cookie replies in total and the most any one source got.
The MAC1 is what any sender can compute (it is keyed by the responder's *public* key); without a cookie the
initiations carry no MAC2, as a real initiator's first try does.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import ctypes.util
import hashlib
import ipaddress
import json
import os
import socket
import struct
import time

LABEL_MAC1 = b"mac1----"
INITIATION_SIZE = 148
COOKIE_REPLY = 3
MAX_SECONDS = 60.0  # a flood is bounded whatever the caller asks
MAX_SOURCES = 256


def initiations(public_key: bytes, count: int) -> list[bytes]:
    """``count`` initiations with random sender index, ephemeral, static and timestamp, and a valid MAC1."""
    mac1_key = hashlib.blake2s(LABEL_MAC1 + public_key).digest()
    out = []
    for _ in range(count):
        body = struct.pack("<I", 1) + os.urandom(4 + 32 + 48 + 28)
        mac1 = hashlib.blake2s(body, digest_size=16, key=mac1_key).digest()
        out.append(body + mac1 + bytes(16))
    return out


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_Iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


class Batch:
    """``count`` messages for sendmmsg(2) on a connected socket: one system call sends them all (the standard
    library has no sendmmsg; a Python loop of sendto tops out near 50 thousand a second on one core)."""

    def __init__(self, msgs: list[bytes], count: int) -> None:
        self._bufs = [ctypes.create_string_buffer(m, len(m)) for m in msgs]
        self._iov = (_Iovec * count)()
        self.vec = (_Mmsghdr * count)()
        for i in range(count):
            buf = self._bufs[i % len(self._bufs)]
            self._iov[i] = _Iovec(ctypes.cast(buf, ctypes.c_void_p), len(msgs[i % len(msgs)]))
            self.vec[i].hdr.iov = ctypes.pointer(self._iov[i])
            self.vec[i].hdr.iovlen = 1
        self.count = count
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def send(self, fd: int, count: int) -> int:
        """Messages sent (fewer when the socket's buffer is full; 0 on an error)."""
        sent = self._libc.sendmmsg(fd, self.vec, min(count, self.count), 0x40)  # MSG_DONTWAIT
        return max(0, sent)


def sources(spec: str) -> list[str]:
    """``203.0.113.100/64``: 64 consecutive addresses from 203.0.113.100."""
    first, _, count = spec.partition("/")
    start = ipaddress.ip_address(first)
    return [str(start + i) for i in range(min(int(count or 1), MAX_SOURCES))]


def flood(target: tuple[str, int], public_key: bytes, addrs: list[str], rate: float, seconds: float,
          batch: int = 64) -> dict:
    socks = []
    for addr in addrs:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        s.setblocking(False)
        socks.append(s)
    msgs = initiations(public_key, 1024)
    for sock in socks:
        sock.connect(target)
    batch_msgs = Batch(msgs, 256)
    replies = [0] * len(socks)
    seconds = min(seconds, MAX_SECONDS)
    sent = dropped = attempts = 0
    start = time.monotonic()
    deadline = start + seconds
    batch = max(1, min(batch, 256))
    turn = 0
    while (now := time.monotonic()) < deadline:
        due = int((now - start) * rate) - attempts
        if due <= 0:
            time.sleep(min(0.001, deadline - now))
            continue
        want = min(due, batch)
        # one sendmmsg per source in turn: the sources interleave in batches, as independent senders would
        done = batch_msgs.send(socks[turn % len(socks)].fileno(), want)
        turn += 1
        attempts += want
        sent += done
        dropped += want - done  # our own buffer was full: counted, not retried
        if turn % 64 == 0:
            _drain(socks, replies)
    elapsed = time.monotonic() - start
    time.sleep(0.2)
    _drain(socks, replies)
    for s in socks:
        s.close()
    return {"sent": sent, "not_sent": dropped, "seconds": round(elapsed, 2), "rate": round(sent / elapsed),
            "sources": len(addrs), "cookie_replies": sum(replies), "max_replies_per_source": max(replies, default=0)}


def _drain(socks: list[socket.socket], replies: list[int]) -> None:
    for i, s in enumerate(socks):
        while True:
            try:
                data = s.recv(256)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if data[:1] == bytes([COOKIE_REPLY]):
                replies[i] += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="HOST:PORT of the daemon")
    ap.add_argument("--public-key", required=True, help="the daemon's public key, base64")
    ap.add_argument("--sources", required=True, help="FIRST/COUNT source addresses, e.g. 203.0.113.100/64")
    ap.add_argument("--rate", type=float, default=40000, help="initiations per second (0: as fast as possible)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--batch", type=int, default=64, help="initiations per system call (at most 256)")
    args = ap.parse_args()
    host, _, port = args.target.rpartition(":")
    rate = args.rate if args.rate > 0 else 1e9
    print(json.dumps(flood((host, int(port)), base64.b64decode(args.public_key), sources(args.sources), rate,
                           args.seconds, args.batch)))


if __name__ == "__main__":
    main()
