"""Hostile datagrams: whatever arrives, nothing escapes, nothing is answered, the session keeps working."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pair.harness import EP_A, Pair

HOSTILE = ("203.0.113.13", 4444)
_FIXTURE_SETTINGS = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def established() -> tuple[Pair, list[bytes]]:
    p = Pair(seed=7)
    p.send("a", b"one")
    p.send("b", b"two")
    p.advance(1)
    recorded = [data for _, _, data, _ in p.wire.log]
    return p, recorded


PAIR, RECORDED = established()


def still_works(p: Pair) -> None:
    p.a.check_invariants()
    p.b.check_invariants()
    n = len(p.tun["b"])
    p.send("a", b"after")
    assert [pkt[20:] for pkt in p.tun["b"][n:]] == [b"after"]


def typed(kind: int) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=200).map(lambda b: bytes([kind, 0, 0, 0]) + b)


@_FIXTURE_SETTINGS
@given(st.one_of(st.binary(max_size=1600), typed(1), typed(2), typed(3), typed(4)))
def test_random_datagrams_are_dropped_silently(data):
    assert PAIR.b.decapsulate(data, HOSTILE, PAIR.clock.now) == []
    assert PAIR.a.decapsulate(data, HOSTILE, PAIR.clock.now) == []


@_FIXTURE_SETTINGS
@given(st.sampled_from(range(len(RECORDED))), st.data())
def test_mutated_real_messages_are_dropped_silently(which, data):
    original = RECORDED[which]
    mutated = bytearray(original)
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if how == "flip":
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] ^= data.draw(st.integers(1, 255))
    elif how == "truncate":
        mutated = mutated[: data.draw(st.integers(0, len(mutated) - 1))]
    elif how == "extend":
        mutated += data.draw(st.binary(min_size=1, max_size=64))
    else:
        other = RECORDED[data.draw(st.sampled_from(range(len(RECORDED))))]
        cut = data.draw(st.integers(0, min(len(other), len(mutated))))
        mutated = mutated[:cut] + bytearray(other[cut:])
    if bytes(mutated) == original:
        return
    for dev in (PAIR.a, PAIR.b):
        actions = dev.decapsulate(bytes(mutated), EP_A, PAIR.clock.now)
        # the one answer allowed: a cookie reply to the source, when the device is under load
        for action in actions:
            assert dev.under_load(PAIR.clock.now)
            assert action.data[:4] == b"\x03\x00\x00\x00" and len(action.data) == 64 and action.endpoint == EP_A


def test_session_survives_the_fuzzing():
    still_works(PAIR)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_tun_side_garbage_never_raises(packets):
    p = PAIR
    for pkt in packets:
        for action in p.a.encapsulate(pkt, p.clock.now):
            # whatever the core sends for TUN input is a transport or handshake message to the known peer
            assert action.endpoint == p.endpoints["b"] and action.data[0] in (1, 4)
