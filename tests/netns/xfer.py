"""A checksummed TCP transfer for tests, run inside a namespace.

    python -m tests.netns.xfer recv ADDR PORT        -> prints the sha256 of everything received, then exits
    python -m tests.netns.xfer send ADDR PORT SIZE   -> sends SIZE pseudo-random bytes; prints "sha256 seconds"

The receiver waits at most 120 s for a connection; the sender retries connecting for 10 s (the tunnel may still
be handshaking). Both are bounded so a broken tunnel fails the test instead of hanging it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time

CHUNK = 1 << 16


def recv(addr: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((addr, port))
        srv.listen(1)
        srv.settimeout(120)
        conn, _ = srv.accept()
        conn.settimeout(60)
        digest = hashlib.sha256()
        with conn:
            while chunk := conn.recv(CHUNK):
                digest.update(chunk)
    print(digest.hexdigest(), flush=True)


def send(addr: str, port: int, size: int) -> None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    deadline = time.monotonic() + 10
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect((addr, port))
            break
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    sock.settimeout(60)
    digest = hashlib.sha256()
    block = os.urandom(CHUNK)
    start = time.monotonic()
    with sock:
        sent = 0
        while sent < size:
            n = min(CHUNK, size - sent)
            # vary each block so that a reordering or duplication inside the stream would change the digest
            piece = sent.to_bytes(8, "big") + block[8:n] if n > 8 else block[:n]
            sock.sendall(piece)
            digest.update(piece)
            sent += n
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # wait for the receiver to close: everything arrived
    print(digest.hexdigest(), f"{time.monotonic() - start:.3f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(sys.argv[2], int(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
