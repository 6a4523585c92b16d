"""Capture and send raw UDP payloads for tests, run inside a namespace.

    python -m tests.netns.wire sniff IFACE PORT SRC COUNT TIMEOUT
        -> one JSON line per UDP datagram seen on IFACE (either direction) from address SRC with source or
           destination port PORT: {"src": "a:p", "dst": "a:p", "hex": payload}; stops after COUNT or TIMEOUT s.
           Prints {"ready": true} first, once the raw socket is listening.
    python -m tests.netns.wire probe BIND_ADDR DEST_ADDR PORT ROUNDS WAIT   (a JSON list of hex payloads on stdin)
        -> sends every payload ROUNDS times from one UDP socket, then listens WAIT s for anything sent back;
           prints {"sent": n, "send_errors": n, "replies": [{"src": ..., "hex": ...}]}.

The sniffer is an AF_PACKET socket (SOCK_DGRAM: frames arrive without their link header), IPv4 and IPv6.
Both are bounded in time and count.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def _udp(frame: bytes) -> tuple[str, int, str, int, bytes] | None:
    """(src, sport, dst, dport, payload) of an unfragmented UDP datagram in an IP packet, else None."""
    if not frame:
        return None
    version = frame[0] >> 4
    if version == 4 and len(frame) >= 20:
        ihl = (frame[0] & 0xF) * 4
        flags_offset = struct.unpack_from("!H", frame, 6)[0]
        if frame[9] != 17 or flags_offset & 0x3FFF:  # not UDP, or a fragment
            return None
        src, dst, off = frame[12:16], frame[16:20], ihl
    elif version == 6 and len(frame) >= 40:
        if frame[6] != 17:
            return None
        src, dst, off = frame[8:24], frame[24:40], 40
    else:
        return None
    if len(frame) < off + 8:
        return None
    sport, dport, length = struct.unpack_from("!HHH", frame, off)
    payload = frame[off + 8:off + length]
    return str(ipaddress.ip_address(src)), sport, str(ipaddress.ip_address(dst)), dport, payload


def sniff(iface: str, port: int, src: str, count: int, timeout: float) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    sock.bind((iface, ETH_P_ALL))
    sock.settimeout(0.2)
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + timeout
    seen = 0
    while seen < count and time.monotonic() < deadline:
        try:
            frame = sock.recv(65535)
        except TimeoutError:
            continue
        udp = _udp(frame)
        if udp is None or udp[0] != src or port not in (udp[1], udp[3]):
            continue
        seen += 1
        print(json.dumps({"src": f"{udp[0]}:{udp[1]}", "dst": f"{udp[2]}:{udp[3]}", "hex": udp[4].hex()}),
              flush=True)
    sock.close()


def probe(bind: str, dest: str, port: int, rounds: int, wait: float) -> None:
    payloads = [bytes.fromhex(h) for h in json.load(sys.stdin)]
    family = socket.AF_INET6 if ":" in dest else socket.AF_INET
    sent = errors = 0
    replies = []
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, 0))
        for _ in range(rounds):
            for data in payloads:
                try:
                    sock.sendto(data, (dest, port))
                    sent += 1
                except OSError:
                    errors += 1
                # paced: the daemon's receive buffer is small on purpose (udp.py), and three 64 KiB datagrams in a
                # row would overflow it before the daemon drains it; the kernel dropping them is not what is tested
                time.sleep(0.001)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, src = sock.recvfrom(65535)
            except TimeoutError:
                break
            except OSError as exc:  # e.g. ECONNREFUSED: an ICMP error, not a reply from the daemon
                replies.append({"src": "icmp", "hex": "", "error": exc.strerror})
                continue
            replies.append({"src": f"{src[0]}:{src[1]}", "hex": data.hex()})
    print(json.dumps({"sent": sent, "send_errors": errors, "replies": replies}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "sniff":
        sniff(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    else:
        probe(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
