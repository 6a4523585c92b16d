"""The failover datagrams (announcement, relay request and reply, probe and reply): round trip, bounds, hostile
bytes."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linker.errors import ContractError
from linker.gateway.failover_wire import (
    MAX_SIZE,
    Announcement,
    FailoverWireError,
    Probe,
    ProbeReply,
    RelayReply,
    RelayRequest,
    decode,
    encode,
)

GOOD = Announcement("prod", "us-east-1", "i-0123456789abcdef0", 42)


def test_an_announcement_round_trips_in_a_small_fixed_layout():
    data = encode(GOOD)
    assert data[:6] == b"LKHA\x01\x01" and struct.unpack("!Q", data[6:14]) == (42,)
    assert decode(data) == GOOD
    assert len(data) == 14 + 5 + 10 + 20


def test_the_largest_announcement_fits_max_size():
    big = Announcement("l" * 63, "s" * 63, "i" * 63, 2**64 - 1)
    assert len(encode(big)) == MAX_SIZE == 206 and decode(encode(big)) == big


@pytest.mark.parametrize("fields", [
    ("prod", "us-east-1", "i-1", 0), ("prod", "us-east-1", "i-1", 2**64), ("prod", "us-east-1", "i-1", True),
    ("", "us-east-1", "i-1", 1), ("prod", "s" * 64, "i-1", 1), ("prod", "us east", "i-1", 1),
    ("prod", "us-east-1", "i-\u00e9", 1),
])
def test_values_that_do_not_fit_the_layout_are_refused(fields):
    with pytest.raises(FailoverWireError):
        Announcement(*fields)


@pytest.mark.parametrize("data, problem", [
    (b"", "at least"),
    (b"XXXX" + encode(GOOD)[4:], "magic"),
    (b"LKHA\x02" + encode(GOOD)[5:], "version 2"),
    (b"LKHA\x01\x07" + encode(GOOD)[6:], "type 7"),
    (encode(GOOD)[:-1], "cut short"),
    (encode(GOOD) + b"\x00", "after its last field"),
    (encode(GOOD)[:14], "ends before its link"),
    (encode(GOOD)[:14] + b"\x00" + encode(GOOD)[15:], "link"),
    (encode(GOOD)[:-20] + b"\x13" + b"\xff" * 19, "not ASCII"),
    (encode(GOOD)[:6] + b"\x00" * 8 + encode(GOOD)[14:], "epoch"),
    (b"LKHA\x01\x01" + b"\x00" * 300, "at most"),
])
def test_malformed_datagrams_are_refused_by_name(data, problem):
    with pytest.raises(FailoverWireError, match=problem):
        decode(data)


def test_a_wire_error_is_a_contract_error():
    assert issubclass(FailoverWireError, ContractError)
    with pytest.raises(FailoverWireError):
        decode("not bytes")  # type: ignore[arg-type]


def _decode_or_refuse(data: bytes) -> None:
    try:
        decoded = decode(data)
    except FailoverWireError:
        return
    assert encode(decoded) == data  # what decodes is exactly one canonical announcement


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_nothing_but_the_wire_error(data):
    _decode_or_refuse(data)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=250).map(lambda b: b"LKHA\x01\x01" + b))
def test_random_bytes_after_a_valid_header_raise_nothing_but_the_wire_error(data):
    _decode_or_refuse(data)


OTHERS = (RelayRequest(2**64 - 1, "10.0.1.10"), RelayRequest(0, "fd00::a"), RelayReply(7, True), RelayReply(8, False),
          Probe(9), ProbeReply(2**63))


@pytest.mark.parametrize("message", OTHERS)
def test_relay_and_probe_messages_round_trip_in_a_few_bytes(message):
    data = encode(message)
    assert decode(data) == message and len(data) <= 14 + 17


@pytest.mark.parametrize("data, problem", [
    (encode(RelayRequest(1, "10.0.1.10"))[:-1], "4- or 16-byte"),
    (encode(RelayRequest(1, "10.0.1.10")) + b"\x00", "4- or 16-byte"),
    (encode(RelayRequest(1, "10.0.1.10"))[:14] + b"\x10" + b"\x00" * 4, "4- or 16-byte"),
    (encode(RelayReply(1, True))[:-1] + b"\x02", "0 or 1"),
    (encode(RelayReply(1, True)) + b"\x00", "0 or 1"),
    (encode(Probe(1)) + b"\x00", "after its nonce"),
    (encode(ProbeReply(1)) + b"\x00", "after its nonce"),
])
def test_malformed_relay_and_probe_messages_are_refused_by_name(data, problem):
    with pytest.raises(FailoverWireError, match=problem):
        decode(data)


@pytest.mark.parametrize("make", [lambda: RelayRequest(-1, "10.0.0.1"), lambda: RelayRequest(1, "nowhere"),
                                  lambda: RelayRequest(1, 167772161), lambda: Probe(2**64), lambda: ProbeReply(True)])
def test_relay_and_probe_values_out_of_range_are_refused(make):
    with pytest.raises(FailoverWireError):
        make()


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(range(2, 6)), st.binary(max_size=40))
def test_random_bodies_of_every_type_raise_nothing_but_the_wire_error(kind, body):
    _decode_or_refuse(b"LKHA\x01" + bytes([kind]) + b"\x00" * 8 + body)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_mutated_messages_raise_nothing_but_the_wire_error(data):
    mutated = bytearray(data.draw(st.sampled_from([encode(m) for m in (GOOD, *OTHERS)])))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    _decode_or_refuse(bytes(mutated))
