"""The Python floor: the least a CPython tunnel does per packet, as a reference beside the real systems.

One process per side reads a packet from a TUN device, seals it with ChaCha20-Poly1305 (``cryptography``, as
linker does) behind a 16-byte header shaped like WireGuard's, and sends it over UDP; and the reverse. No handshake
(both ends read one random key from a file), no replay window, no timers, no batching, no offloads: one epoll
loop over two fds. It is not a tunnel anyone should run. It answers one question within the benchmark's run: how
much of a Python daemon's latency through an idle tunnel is the interpreter's and the system calls' alone.

    python -m bench.harness.floor NAME LOCAL_ADDR PEER_ADDR PORT TUNNEL_ADDR/PREFIX KEY_FILE
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import subprocess
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MTU = 1420
HEADER = struct.Struct("<IIQ")  # type 4, receiver 0, counter: a WireGuard transport header's shape


def main(argv: list[str]) -> int:
    name, local, peer, port, address, key_file = argv
    key = bytes.fromhex(open(key_file).read().strip())
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "addr", "add", address, "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "mtu", str(MTU), "up"], check=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local, int(port)))
    sock.setblocking(False)
    poller = select.epoll()
    poller.register(fd, select.EPOLLIN)
    poller.register(sock.fileno(), select.EPOLLIN)
    aead = ChaCha20Poly1305(key)
    seal, open_, pack = aead.encrypt, aead.decrypt, HEADER.pack
    read, write, recv, sendto = os.read, os.write, sock.recv, sock.sendto
    destination = (peer, int(port))
    counter = 0
    while True:
        for ready, _ in poller.poll():
            if ready == fd:
                while True:
                    try:
                        packet = read(fd, 65535)
                    except BlockingIOError:
                        break
                    header = pack(4, 0, counter)
                    counter += 1
                    sendto(header + seal(b"\0\0\0\0" + header[8:], packet, None), destination)
            else:
                while True:
                    try:
                        datagram = recv(65535)
                    except BlockingIOError:
                        break
                    if len(datagram) < 32:
                        continue
                    try:
                        write(fd, open_(b"\0\0\0\0" + datagram[8:16], datagram[16:], None))
                    except (InvalidTag, OSError):  # a forged datagram, a packet TUN refuses: dropped
                        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
