"""Segmentation of the TUN device's offloaded reads: the send side's half of offload.py.

With TUNSETOFFLOAD (checksum, TSO4/6, USO4/6) the kernel hands the daemon what a NIC would get: one TCP or UDP
"super-segment" of up to 64 KB behind a virtio-net header saying how to cut it (``gso_size``), and packets whose
transport checksum is left for the device to finish (``F_NEEDS_CSUM``: the field holds the pseudo-header's sum).
One read then carries what took dozens before, and the sending host's TCP stack handles one big packet instead of
dozens. The daemon plays the NIC: ``segment`` turns one read into the plain, complete IP packets it stands for,
each at most ``gso_size`` of payload with its own IP length, ID and header checksum, TCP sequence number and
flags (CWR on the first only, FIN and PSH on the last only) or UDP length, and its transport checksum computed.
The protocol core then sees ordinary packets and seals them one by one, as it always did.

Checksums are computed with one big-integer conversion: since 2**16 = 1 (mod 0xFFFF), the value of a run of bytes
read as one big-endian number is congruent to the sum of its 16-bit words, which is the ones'-complement sum up
to the representation of zero. The result is never 0 (0xFFFF stands for it), which TCP and IPv4 accept and UDP
requires. Pure: bytes in, bytes out, no I/O; hostile or malformed input raises ``SegmentError`` and nothing else.
"""

from __future__ import annotations

import struct

from linker.dataplane.offload import F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6, VNET_HDR, VNET_HDR_LEN

GSO_UDP_L4 = 5  # VIRTIO_NET_HDR_GSO_UDP_L4: USO, one UDP datagram per segment
GSO_ECN = 0x80  # the TCP flow uses ECN (only offered with TUN_F_TSO_ECN, which is not asked for)

# TUNSETOFFLOAD's flags (linux/if_tun.h)
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_USO4 = 0x20
TUN_F_USO6 = 0x40

TCP, UDP = 6, 17
FIN, PSH, CWR = 0x01, 0x08, 0x80
MIN_SEGMENT = 8  # a gso_size below this is nonsense (and would make a 64 KB read into thousands of packets)

_H = struct.Struct("!H")
_I = struct.Struct("!I")


class SegmentError(ValueError):
    """A read whose virtio-net header or packet does not make sense (counted and dropped by the loop)."""


def sum16(data: bytes | bytearray | memoryview) -> int:
    """The ones'-complement sum of ``data`` as big-endian 16-bit words (odd length: a zero byte appended), in
    0..0xFFFE (a sum of 0xFFFF reads as 0)."""
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    return value % 0xFFFF


def _finish(total: int) -> int:
    """The checksum field for a ones'-complement ``total``: its complement, 0xFFFF for zero (never 0)."""
    return 0xFFFF - total % 0xFFFF


def segment(frame: bytes | bytearray | memoryview) -> list:
    """One TUN read (virtio-net header, then the packet) -> the complete IP packets it stands for, in order.

    A read with no offload is returned as a view of ``frame`` past the header. Raises SegmentError."""
    if len(frame) <= VNET_HDR_LEN:
        raise SegmentError("a read shorter than its virtio-net header")
    flags, gso_type, _, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(frame)
    packet = memoryview(frame)[VNET_HDR_LEN:]
    if gso_type == GSO_NONE:
        if not flags & F_NEEDS_CSUM:
            return [packet]
        return [_complete(packet, csum_start, csum_offset)]
    kind = gso_type & ~GSO_ECN
    if kind in (GSO_TCPV4, GSO_TCPV6):
        return _split_tcp(packet, csum_start, gso_size, 4 if kind == GSO_TCPV4 else 6)
    if kind == GSO_UDP_L4:
        return _split_udp(packet, csum_start, gso_size)
    raise SegmentError(f"an offload of type {gso_type} that was not asked for")


def _complete(packet: memoryview, start: int, offset: int) -> bytearray:
    """A packet whose checksum field (at start + offset) holds the pseudo-header's sum: the checksum finished."""
    where = start + offset
    if start < 20 or where + 2 > len(packet):
        raise SegmentError("a checksum offset outside the packet")
    out = bytearray(packet)
    _H.pack_into(out, where, _finish(sum16(out[start:])))
    return out


def _l4(packet: memoryview, start: int, version: int) -> int:
    """Check the IP header before the transport header at ``start``; returns the IP version's header length."""
    size = len(packet)
    if version == 4:
        if size < 20 or packet[0] >> 4 != 4 or start != (packet[0] & 15) * 4:
            raise SegmentError("an offloaded IPv4 packet with a bad header")
    elif size < 40 or packet[0] >> 4 != 6 or start < 40:
        raise SegmentError("an offloaded IPv6 packet with a bad header")
    return start


def _split_tcp(packet: memoryview, start: int, mss: int, version: int) -> list:
    """Cut a TCP super-segment. The headers' checksums are sums of constant parts and the fields that change
    (lengths, ID, sequence number, flags), so only each payload is summed: one big-integer pass per packet."""
    l4 = _l4(packet, start, version)
    size = len(packet)
    if l4 + 20 > size:
        raise SegmentError("an offloaded TCP packet shorter than its headers")
    hlen = l4 + (packet[l4 + 12] >> 4) * 4
    if hlen < l4 + 20 or hlen > size or mss < MIN_SEGMENT:
        raise SegmentError("an offloaded TCP packet with a bad header or segment size")
    data = bytes(packet[hlen:])  # slices of bytes are what int.from_bytes reads without another copy
    template = bytearray(packet[:hlen])
    seq = _I.unpack_from(template, l4 + 4)[0]
    flags = template[l4 + 13]
    # the TCP header's sum without the sequence number, the flags and the checksum (all set per packet below)
    template[l4 + 4:l4 + 8] = bytes(4)
    template[l4 + 16:l4 + 18] = bytes(2)
    template[l4 + 13] = 0
    tcp_base = sum16(template[l4:]) + TCP + sum16(template[12:20] if version == 4 else template[8:40])
    ip_base = 0
    ident = 0
    if version == 4:
        ident = _H.unpack_from(template, 4)[0]
        template[2:6] = bytes(4)
        template[10:12] = bytes(2)
        ip_base = sum16(template[:l4])
    total = len(data)
    out = []
    pack_h, pack_i = _H.pack_into, _I.pack_into
    body_base = hlen - l4
    mid_flags = flags & ~(FIN | PSH | CWR) & 0xFF
    for i, at in enumerate(range(0, total, mss)):
        end = at + mss if at + mss < total else total
        chunk = data[at:end]
        seg = template + chunk
        number = (seq + at) & 0xFFFFFFFF
        pack_i(seg, l4 + 4, number)
        fl = flags if i == 0 and end == total else (
            flags & ~(FIN | PSH) & 0xFF if i == 0 else (flags & ~CWR & 0xFF if end == total else mid_flags))
        seg[l4 + 13] = fl
        length = hlen + end - at
        if version == 4:
            ip_id = (ident + i) & 0xFFFF
            pack_h(seg, 2, length)
            pack_h(seg, 4, ip_id)
            pack_h(seg, 10, _finish(ip_base + length + ip_id))
        else:
            pack_h(seg, 4, length - 40)
        payload = int.from_bytes(chunk, "big")
        if (end - at) & 1:
            payload <<= 8
        pack_h(seg, l4 + 16, _finish(tcp_base + (number >> 16) + (number & 0xFFFF) + fl
                                     + body_base + end - at + payload % 0xFFFF))
        out.append(seg)
    return out


def _split_udp(packet: memoryview, start: int, size_each: int) -> list:
    version = packet[0] >> 4 if len(packet) else 0
    if version not in (4, 6):
        raise SegmentError("an offloaded UDP packet that is not IP")
    l4 = _l4(packet, start, version)
    size = len(packet)
    hlen = l4 + 8
    if hlen > size or size_each < MIN_SEGMENT:
        raise SegmentError("an offloaded UDP packet with a bad header or segment size")
    template = bytearray(packet[:hlen])
    template[l4 + 6:l4 + 8] = b"\0\0"
    ident = _H.unpack_from(template, 4)[0] if version == 4 else 0
    pseudo_base = sum16(template[12:20] if version == 4 else template[8:40]) + UDP
    out = []
    pack_h = _H.pack_into
    for i, at in enumerate(range(hlen, size, size_each)):
        end = at + size_each if at + size_each < size else size
        seg = template + packet[at:end]
        length = len(seg)
        pack_h(seg, l4 + 4, length - l4)
        if version == 4:
            pack_h(seg, 2, length)
            pack_h(seg, 4, (ident + i) & 0xFFFF)
            seg[10:12] = b"\0\0"
            pack_h(seg, 10, _finish(sum16(seg[:l4])))
        else:
            pack_h(seg, 4, length - 40)
        pack_h(seg, l4 + 6, _finish(pseudo_base + (length - l4) + sum16(seg[l4:])))
        out.append(seg)
    return out
