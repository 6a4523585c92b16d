"""Per-packet cost of the protocol core alone (no TUN, no sockets): encapsulate and decapsulate.

    python bench/core.py [--packets N] [--size BYTES]

Prints packets/s and the implied Gbit/s of one core, beside the cost of the bare cipher (the anchor: the core
cannot beat ChaCha20-Poly1305 itself).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.pair.harness import Pair, ipv4_packet


def rate(label: str, n: int, size: int, seconds: float) -> None:
    pps = n / seconds
    print(f"{label:34} {pps:12,.0f} pkt/s  {pps * size * 8 / 1e9:6.2f} Gbit/s  {seconds / n * 1e6:6.2f} us/pkt")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1420)
    args = ap.parse_args()
    n, size = args.packets, args.size
    p = Pair(seed=3)
    p.send("a", b"warm-up")
    packet = ipv4_packet("10.1.0.1", "10.2.0.1", os.urandom(size - 20))
    now = p.clock.now

    aead = ChaCha20Poly1305(os.urandom(32))
    nonce = bytes(12)
    t = time.perf_counter()
    for _ in range(n):
        aead.encrypt(nonce, packet, None)
    rate("anchor: ChaCha20-Poly1305 seal", n, size, time.perf_counter() - t)

    enc = p.a.encapsulate
    t = time.perf_counter()
    datagrams = [enc(packet, now)[0].data for _ in range(n)]
    rate("core: encapsulate", n, size, time.perf_counter() - t)

    dec = p.b.decapsulate
    src = p.endpoints["a"]
    t = time.perf_counter()
    for d in datagrams:
        dec(d, src, now)
    rate("core: decapsulate", n, size, time.perf_counter() - t)

    # the daemon's paths: batches of 44 (one UDP GSO/GRO super-datagram of 1452-byte messages)
    batch = 44
    enc_b = p.a.encapsulate_batch
    packets = [packet] * batch
    t = time.perf_counter()
    sealed = [d for _ in range(n // batch) for d in enc_b(packets, now)[0].datagrams]
    rate(f"core: encapsulate_batch ({batch})", len(sealed), size, time.perf_counter() - t)
    dec_b = p.b.decapsulate_batch
    t = time.perf_counter()
    for i in range(0, len(sealed), batch):
        dec_b(sealed[i:i + batch], src, now)
    rate(f"core: decapsulate_batch ({batch})", len(sealed), size, time.perf_counter() - t)


if __name__ == "__main__":
    main()
