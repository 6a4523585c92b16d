"""The fixed IPv4 and IPv6 header fields the packet paths read: stated length, source and destination.

Every path that routes or checks an IP packet reads its header here, so the offsets live in one place. The
functions take any bytes-like packet (a memoryview of a read buffer too), never raise on short or non-IP input
(they return None), and allocate only the address they return: they run once per packet.
"""

from __future__ import annotations

IPV4_HEADER_LEN = 20  # without options
IPV6_HEADER_LEN = 40  # the fixed header; extension headers count as payload


def destination(packet: bytes) -> bytes | None:
    """The destination address (4 or 16 packed bytes), or None when ``packet`` is not an IPv4 or IPv6 packet with a
    whole fixed header."""
    size = len(packet)
    if size >= IPV4_HEADER_LEN:
        v = packet[0] >> 4
        if v == 4:
            return bytes(packet[16:20])
        if v == 6 and size >= IPV6_HEADER_LEN:
            return bytes(packet[24:40])
    return None


def source_and_length(packet: bytes) -> tuple[bytes, int] | None:
    """(source address, the packet's length as its header states it), or None when ``packet`` is not an IPv4 or
    IPv6 packet with a whole fixed header. The stated length is not checked against ``len(packet)``: an IPv4
    total length may be anything (the caller drops one below IPV4_HEADER_LEN or beyond the data); an IPv6
    length is IPV6_HEADER_LEN plus its payload length."""
    size = len(packet)
    if size >= IPV4_HEADER_LEN:
        v = packet[0] >> 4
        if v == 4:
            return bytes(packet[12:16]), (packet[2] << 8) | packet[3]
        if v == 6 and size >= IPV6_HEADER_LEN:
            return bytes(packet[8:24]), IPV6_HEADER_LEN + ((packet[4] << 8) | packet[5])
    return None
