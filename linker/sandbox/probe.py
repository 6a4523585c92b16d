"""A checksummed TCP transfer between two hosts or namespaces: ``python -m linker.sandbox.probe recv|send ...``.

``recv --port P [--bind A]`` listens on A (default 0.0.0.0; an IPv6 address such as ``::`` listens on IPv6),
prints ``listening``, then takes one connection: an 8-byte length, that many bytes, and answers with their
sha256; it prints a JSON line (bytes, sha256, from). ``send --to A --port P --bytes N`` sends N pseudo-random
bytes, compares the answer with its own sha256 and prints a JSON line (bytes, seconds, mbit_s, sha256,
verified); ``--connect-within S`` retries connecting for S seconds (a tunnel may still be handshaking). Every
wait is bounded by ``--timeout`` seconds; a failure prints ``{"error": ...}`` and exits 1.

The sandbox proves a link with it, and the netns, interop and sandbox tests check tunnels with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator

CHUNK = 1 << 16
CONNECT_RETRY = 0.2  # seconds between connection attempts


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def recv_exact(conn: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(min(CHUNK, n - len(data)))
        if not chunk:
            raise ConnectionError(f"the sender closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def receive(port: int, timeout: float, bind: str = "0.0.0.0") -> dict[str, object]:
    """Take one transfer on ``bind``:``port``; raises OSError (a timeout included) when it does not complete."""
    with socket.create_server((bind, port), family=_family(bind)) as server:
        server.settimeout(timeout)
        print("listening", flush=True)
        conn, peer = server.accept()
        with conn:
            conn.settimeout(timeout)
            (size,) = struct.unpack("!Q", recv_exact(conn, 8))
            digest, left = hashlib.sha256(), size
            while left:
                chunk = conn.recv(min(CHUNK, left))
                if not chunk:
                    raise ConnectionError(f"the sender closed after {size - left} of {size} bytes")
                digest.update(chunk)
                left -= len(chunk)
            conn.sendall(digest.digest())
    return {"bytes": size, "sha256": digest.hexdigest(), "from": peer[0]}


def payload(size: int) -> Iterator[bytes]:
    """``size`` bytes in chunks: one random block, each chunk led by its offset, so that a chunk lost, repeated
    or reordered inside the stream changes the digest (and the sender does not spend its CPU on randomness)."""
    block = os.urandom(CHUNK)
    for offset in range(0, size, CHUNK):
        n = min(CHUNK, size - offset)
        yield offset.to_bytes(8, "big") + block[8:n] if n > 8 else block[:n]


def connect(address: str, port: int, timeout: float, within: float) -> socket.socket:
    """A connection to ``address``:``port``, retried for ``within`` seconds; the last OSError when none comes."""
    deadline = time.monotonic() + within
    while True:
        sock = socket.socket(_family(address), socket.SOCK_STREAM)
        sock.settimeout(max(0.5, min(timeout, deadline - time.monotonic())) if within else timeout)
        try:
            sock.connect((address, port))
            sock.settimeout(timeout)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() + CONNECT_RETRY > deadline:
                raise
            time.sleep(CONNECT_RETRY)


def send(address: str, port: int, size: int, timeout: float, within: float = 0.0,
         rate: float | None = None) -> dict[str, object]:
    """Send ``size`` bytes to a receiver and check its sha256; raises OSError when the transfer does not complete.
    ``rate`` (bytes per second) paces the transfer, so that it lasts while something else happens."""
    expected = hashlib.sha256()
    with connect(address, port, timeout, within) as conn:
        started = time.monotonic()
        conn.sendall(struct.pack("!Q", size))
        sent = 0
        for piece in payload(size):
            conn.sendall(piece)
            expected.update(piece)
            sent += len(piece)
            if rate:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        answer = recv_exact(conn, 32)
    seconds = time.monotonic() - started
    return {"bytes": size, "seconds": round(seconds, 4), "mbit_s": round(size * 8 / seconds / 1e6, 2),
            "sha256": expected.hexdigest(), "verified": answer == expected.digest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m linker.sandbox.probe")
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--bind", default="0.0.0.0")
    r.add_argument("--timeout", type=float, default=60.0)
    s = sub.add_parser("send")
    s.add_argument("--to", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--bytes", type=int, default=4 << 20)
    s.add_argument("--timeout", type=float, default=60.0)
    s.add_argument("--connect-within", type=float, default=0.0)
    s.add_argument("--rate", type=float, default=None, help="bytes per second (default: as fast as it goes)")
    args = parser.parse_args(argv)
    try:
        result = receive(args.port, args.timeout, args.bind) if args.mode == "recv" else \
            send(args.to, args.port, args.bytes, args.timeout, args.connect_within, args.rate)
    except OSError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0 if result.get("verified", True) else 1


if __name__ == "__main__":
    sys.exit(main())
