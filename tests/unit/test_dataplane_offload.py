"""TCP coalescing for TUN writes: a super-segment, cut again as the kernel's GSO cuts it, gives back the very packets
that went in (checksums included), flow by flow, in order. Plus the header fields the kernel relies on."""

from __future__ import annotations

import ipaddress
import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from linker.dataplane.offload import (
    F_NEEDS_CSUM,
    GSO_NONE,
    GSO_TCPV4,
    GSO_TCPV6,
    PLAIN,
    VNET_HDR,
    coalesce,
    ip_checksum,
)

ACK, PSH, FIN, SYN = 0x10, 0x08, 0x01, 0x02


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    pseudo = src + dst + (struct.pack("!BBH", 0, 6, len(segment)) if len(src) == 4
                          else struct.pack("!IxxxB", len(segment), 6))
    return csum(pseudo + segment)


def tcp_packet(src: str, dst: str, sport: int, dport: int, seq: int, payload: bytes, flags: int = ACK,
               ack: int = 1000, window: int = 500, ip_id: int = 1, options: bytes = b"") -> bytes:
    """A TCP/IP packet with valid checksums (IPv4 or IPv6 by the addresses)."""
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    doff = 20 + len(options)
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack, (doff // 4) << 4, flags, window,
                                0, 0) + options + payload)
    tcp[16:18] = struct.pack("!H", tcp_checksum(s, d, bytes(tcp)))
    if len(s) == 4:
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ip_id, 0x4000, 64, 6, 0, s, d))
        ip[10:12] = struct.pack("!H", csum(bytes(ip)))
    else:
        ip = bytearray(struct.pack("!IHBB16s16s", 0x60000000, len(tcp), 6, 64, s, d))
    return bytes(ip) + bytes(tcp)


def udp_packet(src: str, dst: str, payload: bytes) -> bytes:
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 7, 0, 64, 17, 0, s, d))
    ip[10:12] = struct.pack("!H", csum(bytes(ip)))
    return bytes(ip) + struct.pack("!HHHH", 53, 53, 8 + len(payload), 0) + payload


def segment(write: list) -> list[bytes]:
    """What the kernel makes of a TUN write: the packet itself, or a GSO super-segment cut at gso_size with the
    IPv4 ID counting up, PSH/FIN only on the last piece, and each checksum completed."""
    vnet, rest = bytes(write[0]), b"".join(bytes(p) for p in write[1:])
    flags, gso, hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack(vnet)
    if gso == GSO_NONE:
        assert flags == 0
        return [rest]
    assert flags == F_NEEDS_CSUM
    v6 = gso == GSO_TCPV6
    ip_len = 40 if v6 else 20
    assert csum_start == ip_len and csum_offset == 16 and hdr_len == ip_len + (rest[ip_len + 12] >> 4) * 4
    header, data = rest[:hdr_len], rest[hdr_len:]
    if not v6:
        assert struct.unpack("!H", header[2:4])[0] == len(rest), "IPv4 total length of the super-segment"
        assert csum(header[:20]) == 0, "IPv4 header checksum of the super-segment"
    else:
        assert struct.unpack("!H", header[4:6])[0] == len(rest) - 40
    src, dst = (header[8:24], header[24:40]) if v6 else (header[12:16], header[16:20])
    # the checksum field holds the pseudo-header sum (uncomplemented) over the whole TCP length
    pseudo = src + dst + (struct.pack("!BBH", 0, 6, len(rest) - ip_len) if not v6
                          else struct.pack("!IxxxB", len(rest) - ip_len, 6))
    assert struct.unpack("!H", header[ip_len + 16:ip_len + 18])[0] == (~csum(pseudo) & 0xFFFF)
    seq0 = struct.unpack("!I", header[ip_len + 4:ip_len + 8])[0]
    ip_id = struct.unpack("!H", header[4:6])[0]
    out = []
    for i, off in enumerate(range(0, len(data), gso_size)):
        chunk = data[off:off + gso_size]
        last = off + gso_size >= len(data)
        h = bytearray(header)
        if not v6:
            h[2:4] = struct.pack("!H", hdr_len + len(chunk))
            h[4:6] = struct.pack("!H", (ip_id + i) & 0xFFFF)
            h[10:12] = b"\0\0"
            h[10:12] = struct.pack("!H", csum(bytes(h[:20])))
        else:
            h[4:6] = struct.pack("!H", hdr_len - 40 + len(chunk))
        h[ip_len + 4:ip_len + 8] = struct.pack("!I", (seq0 + off) & 0xFFFFFFFF)
        if not last:
            h[ip_len + 13] &= ~(PSH | FIN) & 0xFF
        h[ip_len + 16:ip_len + 18] = b"\0\0"
        tcp = bytes(h[ip_len:]) + chunk
        h[ip_len + 16:ip_len + 18] = struct.pack("!H", tcp_checksum(src, dst, tcp))
        out.append(bytes(h) + chunk)
    return out


def flow_of(p: bytes) -> bytes:
    return p[12:24] if p[0] >> 4 == 4 else p[8:44]


def by_flow(packets: list[bytes]) -> dict[bytes, list[bytes]]:
    flows: dict[bytes, list[bytes]] = {}
    for p in packets:
        flows.setdefault(flow_of(p), []).append(p)
    return flows


def stream(src: str, dst: str, count: int, size: int = 1368, seq: int = 1, first_id: int = 1,
           sport: int = 40000) -> list[bytes]:
    return [tcp_packet(src, dst, sport, 5201, seq + i * size, bytes([i % 251]) * size, ip_id=first_id + i)
            for i in range(count)]


def test_a_run_of_one_flow_becomes_one_super_segment() -> None:
    packets = stream("10.1.0.1", "10.2.0.1", 40)
    writes = coalesce(packets)
    assert len(writes) == 1
    flags, gso, hdr_len, gso_size, _, _ = VNET_HDR.unpack(writes[0][0])
    assert (flags, gso, hdr_len, gso_size) == (F_NEEDS_CSUM, GSO_TCPV4, 40, 1368)
    assert segment(writes[0]) == packets


def test_ipv6_runs_too() -> None:
    packets = stream("fd00::1", "fd00::2", 10, size=1300)
    writes = coalesce(packets)
    assert len(writes) == 1 and VNET_HDR.unpack(writes[0][0])[1] == GSO_TCPV6
    assert segment(writes[0]) == packets


def test_a_short_segment_ends_the_run_and_push_is_kept_on_the_last() -> None:
    packets = stream("10.1.0.1", "10.2.0.1", 5)
    tail = tcp_packet("10.1.0.1", "10.2.0.1", 40000, 5201, 1 + 5 * 1368, b"x" * 100, flags=ACK | PSH, ip_id=6)
    after = stream("10.1.0.1", "10.2.0.1", 3, seq=1 + 5 * 1368 + 100, first_id=7)
    writes = coalesce([*packets, tail, *after])
    assert [len(segment(w)) for w in writes] == [6, 3]
    assert segment(writes[0]) == [*packets, tail]


def test_fin_syn_and_gaps_are_never_merged_and_order_holds() -> None:
    a = stream("10.1.0.1", "10.2.0.1", 3)
    gap = stream("10.1.0.1", "10.2.0.1", 2, seq=1 + 10 * 1368, first_id=4)  # a hole: a new run
    fin = tcp_packet("10.1.0.1", "10.2.0.1", 40000, 5201, 1 + 12 * 1368, b"", flags=ACK | FIN, ip_id=6)
    syn = tcp_packet("10.1.0.1", "10.2.0.1", 40001, 5201, 0, b"", flags=SYN)
    writes = coalesce([*a, *gap, fin, syn])
    assert [segment(w) for w in writes] == [a, gap, [fin], [syn]]


def test_interleaved_flows_are_merged_each_in_order() -> None:
    f1 = stream("10.1.0.1", "10.2.0.1", 6, sport=40000)
    f2 = stream("10.1.0.1", "10.2.0.1", 6, sport=40001, seq=7777)
    mixed = [p for pair in zip(f1, f2, strict=True) for p in pair]
    writes = coalesce(mixed)
    assert len(writes) == 2
    assert by_flow([p for w in writes for p in segment(w)]) == by_flow(mixed)


def test_other_packets_pass_through_unchanged() -> None:
    udp = udp_packet("10.1.0.1", "10.2.0.1", b"dns?")
    options = tcp_packet("10.1.0.1", "10.2.0.1", 1, 2, 5, b"data", options=b"\x01\x01\x08\x0a" + bytes(8))
    writes = coalesce([udp, options])
    assert writes == [[PLAIN, udp], [PLAIN, options]]


def test_headers_that_differ_do_not_merge() -> None:
    a = tcp_packet("10.1.0.1", "10.2.0.1", 1, 2, 1, b"x" * 100, ack=5)
    b = tcp_packet("10.1.0.1", "10.2.0.1", 1, 2, 101, b"y" * 100, ack=6)  # a new ack number
    assert [segment(w) for w in coalesce([a, b])] == [[a], [b]]


def test_the_super_segment_never_exceeds_64_kib() -> None:
    packets = stream("10.1.0.1", "10.2.0.1", 100)
    writes = coalesce(packets)
    assert len(writes) >= 3
    assert all(sum(len(bytes(p)) for p in w[1:]) <= 65535 for w in writes)
    assert [p for w in writes for p in segment(w)] == packets


def test_ip_checksum_of_a_known_header() -> None:
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")  # the classic example: b861
    assert ip_checksum(header) == 0xB861


@st.composite
def traffic(draw: st.DrawFn) -> list[bytes]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    flows = [("10.1.0.1", 40000 + i) for i in range(draw(st.integers(1, 3)))]
    seqs = {f: rng.randrange(2**32) for f in flows}
    ids = dict.fromkeys(flows, 1)
    mss = draw(st.sampled_from([536, 1368, 1380]))
    out = []
    for _ in range(draw(st.integers(0, 60))):
        f = rng.choice(flows)
        r = rng.random()
        if r < 0.03:
            out.append(udp_packet("10.1.0.1", "10.2.0.1", b"u" * rng.randrange(1, 100)))
            continue
        size = mss if r < 0.8 else rng.randrange(0, mss + 1)
        flags = ACK | (PSH if rng.random() < 0.1 else 0) | (FIN if rng.random() < 0.03 else 0)
        if rng.random() < 0.05:
            seqs[f] += rng.randrange(1, 5000)  # a hole (loss upstream)
        out.append(tcp_packet("10.1.0.1", "10.2.0.2", f[1], 5201, seqs[f], bytes(size), flags=flags,
                              ip_id=ids[f], ack=1 if rng.random() < 0.9 else 2))
        seqs[f] = (seqs[f] + size) & 0xFFFFFFFF
        ids[f] += 1
    return out


@settings(max_examples=300, deadline=None)
@given(traffic())
def test_any_traffic_comes_back_flow_by_flow(packets: list[bytes]) -> None:
    writes = coalesce(packets)
    again = [p for w in writes for p in segment(w)]
    assert by_flow(again) == by_flow(packets)
    assert len(writes) <= len(packets)
