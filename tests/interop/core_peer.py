"""Run inside a namespace: linker's protocol core over a plain UDP socket (no TUN), as one side of a test.

    python -m tests.interop.core_peer PRIV_B64 PEER_PUB_B64 LOCAL_IP PEER_IP MODE

MODE "initiate": send an ICMP echo request 10.1.0.1 -> 10.2.0.1 and wait for the reply.
MODE "respond": answer ICMP echo requests arriving through the tunnel, three of them, then exit.
Prints one JSON line with the result and the core's counters. Exits 0 on success, 1 on timeout.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import sys
import time

from linker.wg.actions import SendDatagram
from linker.wg.device import Device
from linker.wg.keys import from_base64


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo(src: str, dst: str, kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 1, 0,
                         ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + body


def main() -> int:
    priv, peer, local_ip, peer_ip, mode = sys.argv[1:6]
    dev = Device(from_base64(priv), rng=os.urandom, wallclock=time.time)
    dev.set_peer(from_base64(peer), time.monotonic(), endpoint=(peer_ip, 51820), allowed_ips=["10.2.0.0/24"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local_ip, 51820))
    sock.settimeout(0.1)
    print("listening", file=sys.stderr, flush=True)  # the test pings only from now on

    def perform(actions: list) -> list[bytes]:
        packets = []
        for action in actions:
            if isinstance(action, SendDatagram):
                sock.sendto(action.data, action.endpoint)
            else:
                packets.append(action.packet)
        return packets

    if mode == "initiate":
        perform(dev.encapsulate(icmp_echo("10.1.0.1", "10.2.0.1", 8, 77, 1, b"linker"), time.monotonic()))
    answered = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            data, src = sock.recvfrom(2048)
        except TimeoutError:
            perform(dev.tick(time.monotonic()))
            continue
        for pkt in perform(dev.decapsulate(data, src, time.monotonic())):
            kind = pkt[20]
            if mode == "initiate" and kind == 0 and pkt[28:] == b"linker":
                print(json.dumps({"ok": True, "counters": dict(dev.counters)}))
                return 0
            if mode == "respond" and kind == 8:
                ident, seq = struct.unpack("!HH", pkt[24:28])
                src_ip = str(ipaddress.ip_address(pkt[12:16]))
                reply = icmp_echo("10.1.0.1", src_ip, 0, ident, seq, pkt[28:])
                perform(dev.encapsulate(reply, time.monotonic()))
                answered += 1
                if answered == 3:
                    time.sleep(0.2)  # let the last reply leave before the socket closes
                    print(json.dumps({"ok": True, "answered": answered, "counters": dict(dev.counters)}))
                    return 0
    print(json.dumps({"ok": False, "answered": answered, "counters": dict(dev.counters)}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
