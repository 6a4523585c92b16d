"""A checksummed TCP transfer between two sandbox hosts: ``python -m linker.sandbox.probe recv|send ...``.

``recv --port P`` prints ``listening`` once it accepts connections, then takes one: an 8-byte length, that many
bytes, and answers with their sha256; it prints a JSON line (bytes, sha256). ``send --to A --port P --bytes N``
sends N random bytes, compares the answer with its own sha256 and prints a JSON line (bytes, seconds, Mbit/s,
sha256, verified). Both give up after ``--timeout`` seconds.
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

CHUNK = 1 << 16


def recv_exact(conn: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = conn.recv(min(CHUNK, n - len(data)))
        if not chunk:
            raise ConnectionError(f"the sender closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def receive(port: int, timeout: float) -> dict[str, object]:
    with socket.create_server(("0.0.0.0", port)) as server:
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


def send(address: str, port: int, size: int, timeout: float) -> dict[str, object]:
    payload = os.urandom(size)
    expected = hashlib.sha256(payload)
    started = time.monotonic()
    with socket.create_connection((address, port), timeout=timeout) as conn:
        conn.settimeout(timeout)
        conn.sendall(struct.pack("!Q", size))
        view = memoryview(payload)
        for offset in range(0, size, CHUNK):
            conn.sendall(view[offset:offset + CHUNK])
        answer = recv_exact(conn, 32)
    seconds = time.monotonic() - started
    return {"bytes": size, "seconds": round(seconds, 4), "mbit_s": round(size * 8 / seconds / 1e6, 2),
            "sha256": expected.hexdigest(), "verified": answer == expected.digest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m linker.sandbox.probe")
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--timeout", type=float, default=60.0)
    s = sub.add_parser("send")
    s.add_argument("--to", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--bytes", type=int, default=4 << 20)
    s.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        result = receive(args.port, args.timeout) if args.mode == "recv" else \
            send(args.to, args.port, args.bytes, args.timeout)
    except OSError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0 if result.get("verified", True) else 1


if __name__ == "__main__":
    sys.exit(main())
