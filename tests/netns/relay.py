"""A userspace UDP impairment relay for tests (the kernel here has no tc netem): drop, duplicate, reorder.

    python -m tests.netns.relay --left 192.0.2.254:40000 --left-peer 192.0.2.1:51820 \\
        --right 198.51.100.254:40000 --right-peer 198.51.100.2:51820 \\
        --drop 0.05 --dup 0.02 --reorder 0.05 --seed 7 --duration 60 --max-packets 200000

Datagrams arriving on the left socket leave from the right socket to the right peer, and the other way round, so
each side sees the relay as its peer's endpoint. Each datagram, independently and from one seeded RNG, is dropped
(probability ``drop``), or held back ``reorder-delay`` seconds so that the datagrams behind it overtake it
(``reorder``), or forwarded; a forwarded one is also sent a second time with probability ``dup``.
Replies go to the configured peer, or to the last source seen on that side if it moved.

Bounded: it exits after ``duration`` seconds or ``max-packets`` datagrams, or on SIGTERM/SIGINT, and then prints
its counters as one JSON line on stdout (received, forwarded, dropped, duplicated, reordered, per direction too).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import select
import signal
import socket
import sys
import time
from collections import Counter

MAX_DATAGRAM = 65535


def host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class Relay:
    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = random.Random(args.seed)
        self.drop, self.dup, self.reorder = args.drop, args.dup, args.reorder
        self.reorder_delay = args.reorder_delay
        self.deadline = time.monotonic() + args.duration
        self.max_packets = args.max_packets
        self.counters: Counter[str] = Counter()
        self.running = True
        self.socks: dict[str, socket.socket] = {}
        self.peers: dict[str, tuple[str, int]] = {}
        for side, listen, peer in (("left", args.left, args.left_peer), ("right", args.right, args.right_peer)):
            addr = host_port(listen)
            sock = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(addr)
            sock.setblocking(False)
            self.socks[side] = sock
            self.peers[side] = host_port(peer)
        self.held: list[tuple[float, int, str, bytes]] = []  # (release time, sequence, out side, data)
        self._seq = 0

    def stop(self, *_: object) -> None:
        self.running = False

    def run(self) -> None:
        by_fd = {s.fileno(): side for side, s in self.socks.items()}
        while self.running:
            now = time.monotonic()
            if now >= self.deadline or self.counters["received"] >= self.max_packets:
                break
            timeout = min(0.1, self.deadline - now)
            if self.held:
                timeout = max(0.0, min(timeout, self.held[0][0] - now))
            try:
                ready, _, _ = select.select(list(by_fd), [], [], timeout)
            except InterruptedError:
                continue
            for fd in ready:
                self._drain(by_fd[fd])
            self._release(time.monotonic())
        self._release(float("inf"))  # what is held still leaves: reordered, not lost

    def _drain(self, side: str) -> None:
        sock = self.socks[side]
        out = "right" if side == "left" else "left"
        for _ in range(256):
            try:
                data, src = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            self.peers[side] = (src[0], src[1])  # replies go where this side now is
            self.counters["received"] += 1
            self.counters[f"{side}_to_{out}"] += 1
            r = self.rng.random()
            if r < self.drop:
                self.counters["dropped"] += 1
            elif r < self.drop + self.reorder:
                self.counters["reordered"] += 1
                self._seq += 1
                heapq.heappush(self.held, (time.monotonic() + self.reorder_delay, self._seq, out, data))
            else:
                self._send(out, data)
            if r >= self.drop and self.rng.random() < self.dup:
                self.counters["duplicated"] += 1
                self._send(out, data)
            if self.counters["received"] >= self.max_packets:
                return

    def _release(self, now: float) -> None:
        while self.held and self.held[0][0] <= now:
            _, _, out, data = heapq.heappop(self.held)
            self._send(out, data)

    def _send(self, out: str, data: bytes) -> None:
        try:
            self.socks[out].sendto(data, self.peers[out])
            self.counters["forwarded"] += 1
        except OSError:
            self.counters["send_error"] += 1

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--left", required=True)
    p.add_argument("--left-peer", required=True)
    p.add_argument("--right", required=True)
    p.add_argument("--right-peer", required=True)
    p.add_argument("--drop", type=float, default=0.0)
    p.add_argument("--dup", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--reorder-delay", type=float, default=0.003)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--max-packets", type=int, default=1_000_000)
    args = p.parse_args(argv)
    if not 0 <= args.drop + args.reorder <= 1 or not 0 <= args.dup <= 1:
        p.error("rates are probabilities, and drop + reorder is at most 1")
    relay = Relay(args)
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    print(json.dumps({"ready": True}), flush=True)
    try:
        relay.run()
    finally:
        relay.close()
        print(json.dumps(dict(relay.counters)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
