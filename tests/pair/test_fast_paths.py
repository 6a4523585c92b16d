"""``Device.seal_one`` and ``open_one``: the daemon's path for a lone packet is the general path without its lists.

Every test in tests/pair also runs through them (conftest.py); these check what that cannot show on its own:
that they are taken, that they decline without changing anything, and that the bytes on the wire are the same.
"""

from __future__ import annotations

import random
import struct

from linker.wg.constants import MESSAGE_INITIATION, MESSAGE_TRANSPORT, REKEY_AFTER_MESSAGES
from tests.pair.harness import EP_A, Pair, ipv4_packet

TIMERS = ("t_new_handshake", "t_send_keepalive", "t_persistent_keepalive", "t_retransmit_handshake",
          "t_zero_key_material", "need_another_keepalive", "sent_lastminute_handshake")


def state(pair: Pair, name: str) -> tuple:
    peer = pair.peer(name)
    return peer.status([]), tuple(getattr(peer, t) for t in TIMERS)


def scenario(pair: Pair) -> None:
    """A session's life: handshake, traffic both ways, a passive keepalive, a rekey on time, an idle spell."""
    pair.send("a", b"first")
    for i in range(20):
        pair.send("a", b"x" * i)
        pair.send("b", b"y" * (40 - i))
        pair.advance(0.5)
    pair.send("a", b"no answer")
    pair.advance(11)  # b owes a keepalive
    pair.advance(125)  # past REKEY_AFTER_TIME: a's next send starts a new handshake
    for i in range(5):
        pair.send("a", b"after rekey %d" % i)
        pair.send("b", b"reply %d" % i)
    pair.advance(30)


def test_the_fast_paths_put_the_same_bytes_on_the_wire_and_in_tun() -> None:
    general, fast = Pair(seed=7, fast=False), Pair(seed=7, fast=True)
    taken = {"seal_one": 0, "open_one": 0}

    def counting(name: str, real):  # type: ignore[no-untyped-def]
        def counted(*args):  # type: ignore[no-untyped-def]
            result = real(*args)
            taken[name] += result is not None
            return result
        return counted

    for device in fast.devices.values():
        for method in taken:
            setattr(device, method, counting(method, getattr(device, method)))
    scenario(general)
    scenario(fast)
    assert taken["seal_one"] >= 40 and taken["open_one"] >= 40
    assert [(t, who, data) for t, who, data, _ in fast.wire.log] == \
        [(t, who, data) for t, who, data, _ in general.wire.log]
    assert fast.tun == general.tun
    for name in ("a", "b"):
        assert fast.devices[name].counters == general.devices[name].counters
        assert state(fast, name) == state(general, name)
    assert len(fast.initiations("a")) >= 2  # the scenario did rekey


def test_a_lone_packet_on_a_session_takes_the_fast_path_both_ways() -> None:
    pair = Pair(seed=3, fast=True)
    pair.send("a", b"handshake first")
    packet = ipv4_packet("10.1.0.1", "10.2.0.1", b"ping")
    sealed = pair.a.seal_one(packet, pair.clock.now)
    assert sealed is not None
    datagram, endpoint = sealed
    assert endpoint == pair.endpoints["b"] and datagram[0] == MESSAGE_TRANSPORT
    assert pair.b.open_one(datagram, EP_A, pair.clock.now) == packet  # the padding is cut off again
    assert pair.b.open_one(datagram, EP_A, pair.clock.now) == b""  # a replay: taken, dropped, counted
    assert pair.b.counters["drop_replay"] == 1


def test_seal_one_declines_and_changes_nothing_without_a_session_or_when_a_rekey_is_due() -> None:
    pair = Pair(seed=4, fast=True)
    packet = ipv4_packet("10.1.0.1", "10.2.0.1")
    before = (dict(pair.a.counters), state(pair, "a"))
    assert pair.a.seal_one(packet, pair.clock.now) is None  # no session yet
    assert pair.a.seal_one(b"\x45" + bytes(10), pair.clock.now) is None  # not an IP packet
    assert pair.a.seal_one(ipv4_packet("10.1.0.1", "10.9.0.1"), pair.clock.now) is None  # no peer
    assert (dict(pair.a.counters), state(pair, "a")) == before
    pair.send("a")
    pair.advance(6)  # past REKEY_TIMEOUT, so that a new initiation is not held back
    keypair = pair.peer("a").current
    keypair.send_counter = REKEY_AFTER_MESSAGES
    assert pair.a.seal_one(packet, pair.clock.now) is None
    assert keypair.send_counter == REKEY_AFTER_MESSAGES
    pair.send("a")  # the general path seals it and starts the rekey
    assert len(pair.initiations("a")) == 2


def test_open_one_declines_handshake_messages_and_the_confirming_message() -> None:
    pair = Pair(seed=5, fast=True)
    pair.drop = lambda sender, data: True
    pair.send("a")
    initiation = pair.wire.sent_by("a", kind=MESSAGE_INITIATION)[0][1]
    assert pair.b.open_one(initiation, EP_A, pair.clock.now) is None
    pair.drop = lambda sender, data: False
    pair.deliver("a", initiation)  # b answers; a confirms with the staged packet, which b takes generally
    assert pair.peer("b").current is not None and pair.peer("b").next is None
    assert pair.tun["b"]


def test_open_one_never_raises_on_hostile_datagrams() -> None:
    pair = Pair(seed=6, fast=True)
    pair.send("a")
    sealed = pair.a.seal_one(ipv4_packet("10.1.0.1", "10.2.0.1", b"z" * 100), pair.clock.now)
    assert sealed is not None
    good = sealed[0]
    rng = random.Random(1)
    for _ in range(2000):
        bad = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        cut = bytes(bad[: rng.choice([len(bad), rng.randrange(len(bad))])])
        result = pair.b.open_one(cut, EP_A, pair.clock.now)
        assert result is None or isinstance(result, bytes)
        if result:  # only the untouched message may decrypt
            assert cut == good
    garbage = [struct.pack("<IIQ", MESSAGE_TRANSPORT, rng.getrandbits(32), rng.getrandbits(64)) + rng.randbytes(n)
               for n in range(0, 64)]
    for datagram in garbage:
        assert pair.b.open_one(datagram, EP_A, pair.clock.now) in (None, b"")
    assert pair.peer("b").endpoint == EP_A  # nothing unauthenticated moved it


def test_open_one_drops_authenticated_plaintexts_that_are_no_allowed_ip_packet_as_the_general_path_does() -> None:
    """A peer (it holds the session) sends what is not an IP packet from its AllowedIPs: too short, no IPv4 or IPv6
    header, a stated length beyond the data or below a header, a source not its own. Both paths drop each one and
    count the same reason; the lone path's inline IPv4 check must never raise on them."""
    good = ipv4_packet("10.1.0.1", "10.2.0.1", b"ok")
    plaintexts = [b"\x45", b"\x45" * 19, b"\x00" * 20, b"\x60" + bytes(39),
                  good[:2] + struct.pack(">H", 200) + good[4:], good[:2] + struct.pack(">H", 19) + good[4:],
                  ipv4_packet("10.9.0.1", "10.2.0.1", b"spoof")]
    counted = {}
    for fast in (False, True):
        pair = Pair(seed=8, fast=fast)
        pair.send("a")
        keypair = pair.peer("a").current
        assert keypair is not None
        for plaintext in plaintexts:
            pair.deliver("a", keypair.seal(plaintext, pair.a.mtu))
        assert len(pair.tun["b"]) == 1  # the first packet's, and none of these
        counted[fast] = {k: v for k, v in pair.b.counters.items() if k.startswith("drop_")}
    assert counted[True] == counted[False] and sum(counted[True].values()) == len(plaintexts)
