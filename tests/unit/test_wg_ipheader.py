"""The IP header helper: the fields of IPv4 and IPv6 headers, and None (never an exception) for anything else."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from linker.wg.ipheader import destination, source_and_length
from tests.pair.harness import ipv4_packet


def ipv6_packet(src: str, dst: str, payload: bytes) -> bytes:
    return (struct.pack("!IHBB", 0x60000000, len(payload), 17, 64) + ipaddress.ip_address(src).packed
            + ipaddress.ip_address(dst).packed + payload)


def test_ipv4_fields() -> None:
    packet = ipv4_packet("10.1.0.1", "10.2.0.9", b"abc")
    assert destination(packet) == bytes([10, 2, 0, 9])
    assert source_and_length(packet) == (bytes([10, 1, 0, 1]), 23)


def test_ipv6_fields_and_views_of_a_buffer() -> None:
    packet = ipv6_packet("fd00::1", "fd00::2", b"x" * 10)
    view = memoryview(bytearray(b"\0" * 10 + packet))[10:]  # as the loop hands packets over
    for p in (packet, view):
        assert destination(p) == ipaddress.ip_address("fd00::2").packed
        assert source_and_length(p) == (ipaddress.ip_address("fd00::1").packed, 50)
        assert type(destination(p)) is bytes  # hashable: AllowedIPs looks it up in a dict


def test_short_or_other_versions_are_not_ip() -> None:
    v4 = ipv4_packet("10.1.0.1", "10.2.0.9")
    v6 = ipv6_packet("fd00::1", "fd00::2", b"")
    for p in (b"", v4[:19], v6[:39], bytes([0x55]) + v4[1:], bytes([0x05]) + v4[1:]):
        assert destination(p) is None and source_and_length(p) is None


@given(st.binary(max_size=64))
def test_never_raises(data: bytes) -> None:
    d, s = destination(data), source_and_length(data)
    assert (d is None) == (s is None)
    assert d is None or len(d) in (4, 16)
