"""Cutting the TUN device's offloaded reads (tso.py): a TCP super-segment comes back as the very packets the kernel's
GSO would make (checked against the independent cutter in test_dataplane_offload), UDP super-segments and
unfinished checksums are finished right, and hostile reads raise SegmentError and nothing else."""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from linker.dataplane.offload import F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, PLAIN, VNET_HDR, coalesce
from linker.dataplane.tso import CWR, FIN, GSO_UDP_L4, MIN_SEGMENT, PSH, SegmentError, segment, sum16
from tests.unit.test_dataplane_offload import ACK, csum, stream, tcp_packet, traffic, udp_packet
from tests.unit.test_dataplane_offload import segment as kernel_cut


def frame(write: list) -> bytes:
    return b"".join(bytes(p) for p in write)


def normal(packet: bytes | bytearray) -> bytes:
    """The packet with checksum fields of 0 written as 0xFFFF: both stand for a zero sum (TCP, IPv4)."""
    p = bytearray(packet)
    v6 = p[0] >> 4 == 6
    l4 = 40 if v6 else (p[0] & 15) * 4
    fields = [] if v6 else [10]
    fields.append(l4 + (16 if p[6 if v6 else 9] == 6 else 6))
    for at in fields:
        if p[at:at + 2] == b"\0\0":
            p[at:at + 2] = b"\xff\xff"
    return bytes(p)


def valid(packet: bytes | bytearray) -> bool:
    """The IPv4 header checksum and the TCP/UDP checksum hold (independent arithmetic: test_dataplane_offload)."""
    p = bytes(packet)
    v6 = p[0] >> 4 == 6
    if not v6 and csum(p[:20]) != 0:
        return False
    l4 = 40 if v6 else 20
    proto = p[6] if v6 else p[9]
    src, dst = (p[8:24], p[24:40]) if v6 else (p[12:16], p[16:20])
    length = len(p) - l4
    pseudo = src + dst + (struct.pack("!BBH", 0, proto, length) if not v6 else struct.pack("!IxxxB", length, proto))
    return csum(pseudo + p[l4:]) == 0


def test_a_tcp_super_segment_is_cut_as_the_kernel_cuts_it() -> None:
    for src, dst in (("10.1.0.1", "10.2.0.1"), ("fd00::1", "fd00::2")):
        packets = stream(src, dst, 40, size=1368 if ":" not in src else 1300)
        tail = tcp_packet(src, dst, 40000, 5201, 1 + 40 * (1368 if ":" not in src else 1300), b"end" * 33,
                          flags=ACK | PSH, ip_id=41)
        (write,) = coalesce([*packets, tail])
        cut = segment(frame(write))
        assert [normal(p) for p in cut] == [normal(p) for p in [*packets, tail]]
        assert all(valid(p) for p in cut)


def test_fin_and_psh_stay_on_the_last_piece_cwr_on_the_first() -> None:
    (write,) = coalesce(stream("10.1.0.1", "10.2.0.1", 5))
    raw = bytearray(frame(write))
    raw[10 + 20 + 13] |= FIN | PSH | CWR
    cut = segment(raw)
    flags = [p[20 + 13] for p in cut]
    assert flags[0] & CWR and not any(f & CWR for f in flags[1:])
    assert flags[-1] & (FIN | PSH) == FIN | PSH and not any(f & (FIN | PSH) for f in flags[:-1])
    assert all(valid(p) for p in cut)


def udp_super_segment(count: int, size: int, last: int) -> tuple[bytes, list[bytes]]:
    """A USO read of ``count`` datagrams of ``size`` bytes (the last ``last`` bytes), and the datagrams it is."""
    payloads = [bytes([i]) * size for i in range(count - 1)] + [b"z" * last]
    expected = []
    for i, payload in enumerate(payloads):
        p = bytearray(udp_packet("10.1.0.1", "10.2.0.1", payload))
        p[4:6] = struct.pack("!H", 7 + i)  # the IPv4 ID counts up, as the kernel's cut makes it
        p[10:12] = b"\0\0"
        p[10:12] = struct.pack("!H", csum(bytes(p[:20])))
        expected.append(bytes(p))
    data = b"".join(payloads)
    header = bytearray(udp_packet("10.1.0.1", "10.2.0.1", data)[:28])
    header[26:28] = b"\0\0"  # the field of an unfinished checksum: garbage to the cutter, which starts over
    vnet = VNET_HDR.pack(F_NEEDS_CSUM, GSO_UDP_L4, 28, size, 20, 6)
    return vnet + bytes(header) + data, expected


def test_a_udp_super_segment_becomes_datagrams_with_their_own_lengths_and_checksums() -> None:
    read, expected = udp_super_segment(10, 1200, 77)
    cut = segment(read)
    assert len(cut) == 10 and all(valid(p) for p in cut)
    assert [p[28:] for p in cut] == [p[28:] for p in expected]
    assert [struct.unpack("!H", p[24:26])[0] for p in cut] == [1208] * 9 + [85]
    assert [bytes(p[:26]) for p in cut] == [p[:26] for p in expected]


def test_an_unfinished_checksum_is_finished() -> None:
    for packet in (tcp_packet("10.1.0.1", "10.2.0.1", 1, 2, 9, b"hello" * 51, flags=ACK | PSH),
                   udp_packet("10.1.0.1", "10.2.0.1", b"odd length!")):
        tcp = packet[9] == 6
        at = 20 + (16 if tcp else 6)
        partial = bytearray(packet)
        length = len(packet) - 20
        pseudo = sum16(packet[12:20]) + packet[9] + length
        partial[at:at + 2] = struct.pack("!H", pseudo % 0xFFFF)  # what the kernel leaves there
        read = VNET_HDR.pack(F_NEEDS_CSUM, GSO_NONE, 0, 0, 20, at - 20) + bytes(partial)
        (done,) = segment(read)
        assert valid(done)
        assert done[:at] + done[at + 2:] == packet[:at] + packet[at + 2:]  # nothing but the checksum changed


def test_a_plain_read_is_returned_as_it_is() -> None:
    packet = udp_packet("10.1.0.1", "10.2.0.1", b"x")
    (out,) = segment(PLAIN + packet)
    assert bytes(out) == packet


@settings(max_examples=200, deadline=None)
@given(traffic())
def test_whatever_coalescing_makes_is_cut_back_the_same(packets: list[bytes]) -> None:
    for write in coalesce(packets):
        assert [normal(p) for p in segment(frame(write))] == [normal(p) for p in kernel_cut(write)]


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=0, max_size=300), st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535),
       st.integers(0, 80), st.integers(0, 40))
def test_hostile_reads_raise_only_segment_error(body: bytes, flags: int, gso: int, size: int, start: int,
                                                offset: int) -> None:
    read = VNET_HDR.pack(flags, gso, 0, size, start, offset) + body
    try:
        out = segment(read)
    except SegmentError:
        return
    assert len(out) <= max(1, len(body) // MIN_SEGMENT)


def test_headers_that_lie_are_refused() -> None:
    (write,) = coalesce(stream("10.1.0.1", "10.2.0.1", 3))
    good = bytearray(frame(write))
    for patch in (lambda b: b.__setitem__(slice(4, 6), b"\0\0"),  # gso_size 0
                  lambda b: b.__setitem__(slice(6, 8), struct.pack("=H", 24)),  # csum_start past the IP header
                  lambda b: b.__setitem__(10, 0x46),  # an IHL that disagrees with csum_start
                  lambda b: b.__setitem__(1, 3)):  # UFO, never asked for
        bad = bytearray(good)
        patch(bad)
        try:
            segment(bad)
        except SegmentError:
            continue
        raise AssertionError("accepted a read whose headers lie")
    assert VNET_HDR.unpack_from(good)[1] == GSO_TCPV4


def test_sum16_is_the_ones_complement_sum() -> None:
    rng = random.Random(7)
    for n in (0, 1, 2, 3, 63, 1400, 1401):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert (0xFFFF - sum16(data)) % 0xFFFF == csum(data) % 0xFFFF
