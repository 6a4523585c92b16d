"""Batching at the kernel boundary: virtio-net headers on the TUN device, and TCP coalescing (GRO) for writes.

With IFF_VNET_HDR every TUN read and write carries a 10-byte ``virtio_net_hdr``. Reads here never ask for
offloads, so they are plain packets with complete checksums behind a zero header. Writes use the header to hand
the kernel one TCP "super-segment" for a run of consecutive segments of one flow, as a NIC's GRO would: the
receiving TCP stack then processes one packet instead of dozens, and a gateway forwarding it re-segments it
(GSO) with fresh checksums. That is what a userspace tunnel saves most CPU with.

``coalesce`` is pure: decrypted IP packets in, TUN writes out (each a list of buffers for ``os.writev``, the
virtio header first). Within a flow, order is kept; packets of different flows may be reordered relative to each
other, as GRO does. Anything unusual (IP options, fragments, SYN/FIN/RST/URG/ECN flags, non-TCP) is written as it
came, after the pending run of its own flow.
"""

from __future__ import annotations

import struct

VNET_HDR = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_HDR_LEN = VNET_HDR.size
F_NEEDS_CSUM = 1
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
PLAIN = bytes(VNET_HDR_LEN)  # no offload: the packet is complete as it is

TCP = 6
ACK, PSH = 0x10, 0x08
MAX_SUPER = 65535  # an IPv4 total length (and the payload length of IPv6) fits in 16 bits


def _fold(total: int) -> int:
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ip_checksum(header: bytes | bytearray) -> int:
    """The IPv4 header checksum (the header's checksum field must be zero)."""
    return ~_fold(sum(struct.unpack(f"!{len(header) // 2}H", header))) & 0xFFFF


def pseudo_sum(src: bytes, dst: bytes, length: int) -> int:
    """The folded, uncomplemented ones'-complement sum of the TCP pseudo-header: what the checksum field holds
    for CHECKSUM_PARTIAL (the kernel adds the segment's own sum when it completes it)."""
    words = struct.unpack(f"!{(len(src) + len(dst)) // 2}H", src + dst)
    return _fold(sum(words) + TCP + (length & 0xFFFF) + (length >> 16))


class SuperSegment(list):
    """A coalesced write (buffers for ``os.writev``) that remembers the packets it was made of, so a kernel that
    refuses it can be given them one by one."""

    def __init__(self, parts: list, packets: list) -> None:
        super().__init__(parts)
        self.packets = packets


class _Run:
    __slots__ = ("first", "gso_size", "hdr_len", "next_seq", "packets", "pieces", "psh", "shape", "total", "v6")

    def __init__(self, packet: bytes, hdr_len: int, payload: int, seq: int, shape: tuple, v6: bool) -> None:
        self.first = packet
        self.hdr_len = hdr_len
        self.gso_size = payload
        self.pieces: list = [packet]  # the first whole, then only payloads
        self.packets: list = [packet]
        self.total = hdr_len + payload
        self.next_seq = (seq + payload) & 0xFFFFFFFF
        self.psh = False
        self.shape = shape
        self.v6 = v6

    def write(self) -> list:
        if len(self.pieces) == 1:
            return [PLAIN, self.first]
        first, hdr_len = self.first, self.hdr_len
        header = bytearray(first[:hdr_len])
        if self.v6:
            ip_len = 40
            header[4:6] = (self.total - 40).to_bytes(2, "big")
            src, dst = bytes(header[8:24]), bytes(header[24:40])
            gso = GSO_TCPV6
        else:
            ip_len = 20
            header[2:4] = self.total.to_bytes(2, "big")
            header[10:12] = b"\0\0"
            header[10:12] = ip_checksum(header[:20]).to_bytes(2, "big")
            src, dst = bytes(header[12:16]), bytes(header[16:20])
            gso = GSO_TCPV4
        if self.psh:
            header[ip_len + 13] |= PSH
        header[ip_len + 16:ip_len + 18] = pseudo_sum(src, dst, self.total - ip_len).to_bytes(2, "big")
        vnet = VNET_HDR.pack(F_NEEDS_CSUM, gso, hdr_len, self.gso_size, ip_len, 16)
        return SuperSegment([vnet, header, memoryview(first)[hdr_len:], *self.pieces[1:]], self.packets)


# IPv4 (no options) + TCP: ver/ihl, tos, frag (16 bits), ttl, proto, addresses+ports, seq, ack, data offset, flags,
# window, urgent pointer
_V4 = struct.Struct("!BB4xHBB2x12sIIBBH2xH")
# IPv6 (no extension headers) + TCP: ver/class/flow, next header, hop limit, addresses+ports, seq, ack, data offset,
# flags, window, urgent pointer
_V6 = struct.Struct("!I2xBB36sIIBBH2xH")


def coalesce(packets: list) -> list[list]:
    """Decrypted IP packets (bytes-like) -> TUN writes (lists of buffers, virtio header first), TCP runs merged."""
    out: list = []  # finished writes (lists) and runs (their place in the order), resolved at the end
    runs: dict[bytes, _Run] = {}
    v4 = _V4.unpack_from
    v6 = _V6.unpack_from
    for p in packets:
        size = len(p)
        first = p[0]
        if first == 0x45 and size >= 40:
            _, tos, frag, ttl, proto, key, seq, ack, doff, flags, window, urg = v4(p)
            if proto != TCP or frag & 0x3FFF:  # not TCP, or a fragment
                out.append(_plain(p, runs, size, 4))
                continue
            ip_len = 20
            v6_flow = 0
        elif first >> 4 == 6 and size >= 60:
            v6_flow, proto, ttl, key, seq, ack, doff, flags, window, urg = v6(p)
            if proto != TCP:
                out.append(_plain(p, runs, size, 6))
                continue
            ip_len = 40
            tos = frag = 0
        else:
            out.append(_plain(p, runs, size, first >> 4))
            continue
        hdr_len = ip_len + ((doff >> 4) << 2)
        payload = size - hdr_len
        if doff < 0x50 or payload <= 0 or flags & 0xE7 or not flags & ACK:  # only ACK, optionally PSH
            runs.pop(key, None)  # close the flow's run: this packet must come after it
            out.append([PLAIN, p])
            continue
        # what must be equal to merge: TOS (or v6 class/flow), DF/TTL, ack, window, urgent pointer, options
        shape = (tos, frag, ttl, v6_flow, ack, doff, window, urg, bytes(p[ip_len + 20:hdr_len]) if doff > 0x50 else b"")
        run = runs.get(key)
        if (run is not None and run.next_seq == seq and run.shape == shape and payload <= run.gso_size
                and run.total + payload <= MAX_SUPER + (40 if ip_len == 40 else 0)):
            run.pieces.append(memoryview(p)[hdr_len:])
            run.packets.append(p)
            run.total += payload
            run.next_seq = (seq + payload) & 0xFFFFFFFF
            if flags & PSH or payload < run.gso_size:
                run.psh = bool(flags & PSH)
                del runs[key]  # a short or pushed segment ends the run
            continue
        run = _Run(p, hdr_len, payload, seq, shape, ip_len == 40)
        out.append(run)
        runs.pop(key, None)
        if not flags & PSH:  # a pushed segment stands alone
            runs[key] = run
    return [w.write() if type(w) is _Run else w for w in out]


def _plain(p: bytes, runs: dict[bytes, _Run], size: int, version: int) -> list:
    """A packet written as it is; if it is TCP of a flow with an open run, that run is closed first."""
    if runs:
        if version == 4 and size >= 20 and p[9] == TCP and not (p[6] & 0x1F or p[7]):  # TCP, first fragment
            ihl = (p[0] & 15) << 2
            if size >= ihl + 4:
                runs.pop(bytes(p[12:20]) + bytes(p[ihl:ihl + 4]), None)
        elif version == 6 and size >= 44 and p[6] == TCP:
            runs.pop(bytes(p[8:44]), None)
    return [PLAIN, p]
