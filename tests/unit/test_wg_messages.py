import pytest
from hypothesis import given
from hypothesis import strategies as st

from linker.wg.messages import CookieReply, Initiation, MessageError, Response, TransportHeader, message_type

u32 = st.integers(0, 2**32 - 1)


@given(u32, st.binary(min_size=32, max_size=32), st.binary(min_size=48, max_size=48),
       st.binary(min_size=28, max_size=28), st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16))
def test_initiation_round_trip(sender, eph, static, ts, m1, m2):
    msg = Initiation(sender, eph, static, ts, m1, m2)
    data = msg.encode()
    assert len(data) == 148 and data[:4] == b"\x01\x00\x00\x00"
    assert Initiation.decode(data) == msg


@given(u32, u32, st.binary(min_size=32, max_size=32), st.binary(min_size=16, max_size=16))
def test_response_round_trip(sender, receiver, eph, nothing):
    msg = Response(sender, receiver, eph, nothing)
    data = msg.encode()
    assert len(data) == 92 and data[:4] == b"\x02\x00\x00\x00"
    assert Response.decode(data) == msg


@given(u32, st.binary(min_size=24, max_size=24), st.binary(min_size=32, max_size=32))
def test_cookie_reply_round_trip(receiver, nonce, cookie):
    msg = CookieReply(receiver, nonce, cookie)
    data = msg.encode()
    assert len(data) == 64 and data[:4] == b"\x03\x00\x00\x00"
    assert CookieReply.decode(data) == msg


@given(u32, st.integers(0, 2**64 - 1))
def test_transport_header_round_trip(receiver, counter):
    data = TransportHeader(receiver, counter).encode()
    assert data[:4] == b"\x04\x00\x00\x00" and len(data) == 16
    assert TransportHeader.decode(data + b"payload") == TransportHeader(receiver, counter)


def test_wrong_sizes_and_reserved_bytes_are_refused():
    good = Initiation(1, bytes(32), bytes(48), bytes(28)).encode()
    with pytest.raises(MessageError):
        Initiation.decode(good[:-1])
    with pytest.raises(MessageError):
        Initiation.decode(good + b"\x00")
    with pytest.raises(MessageError):
        Initiation.decode(b"\x01\x01" + good[2:])  # non-zero reserved byte
    assert message_type(b"\x01\x00\x00") == 0
    assert message_type(b"\x01\x00\x00\x01") != 1
