"""Two devices over an in-memory wire with a fake clock: the handshake, data, and every timer transition."""

import itertools
import logging

import pytest

from linker.wg.constants import (
    KEEPALIVE_TIMEOUT,
    MAX_TIMER_HANDSHAKES,
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)
from linker.wg.keys import to_base64

from .harness import EP_A, Pair, ipv4_packet


def test_first_packet_triggers_handshake_and_arrives():
    p = Pair()
    p.send("a", b"hello")
    assert [pkt[20:] for pkt in p.tun["b"]] == [b"hello"]
    assert len(p.initiations("a")) == 1 and not p.initiations("b")
    # the responder's session was confirmed by the initiator's first data packet
    assert p.peer("b").current is not None and p.peer("b").next is None
    p.send("b", b"world")
    assert [pkt[20:] for pkt in p.tun["a"]] == [b"world"]
    assert p.a.counters["tx_handshake_initiation"] == 1 and p.b.counters["tx_handshake_response"] == 1


def test_with_preshared_key_and_a_mismatch():
    p = Pair(psk=b"\x07" * 32)
    p.send("a")
    assert len(p.tun["b"]) == 1
    q = Pair(psk=b"\x07" * 32)
    q.b.set_peer(q.a.public_key, q.clock.now, preshared_key=b"\x08" * 32)
    q.send("a")
    assert q.tun["b"] == [] and q.a.counters["drop_invalid"] == 1  # the response does not decrypt


def test_initiator_confirms_with_a_keepalive_when_nothing_is_staged():
    p = Pair(keepalive_a=25)
    # turning on the persistent keepalive sent one, which needed a handshake; the keepalive confirmed it
    assert len(p.initiations("a")) == 1
    assert p.peer("b").current is not None
    assert p.b.counters["rx_keepalive"] == 1


def test_passive_keepalive_after_receiving_data_and_sending_none():
    p = Pair()
    p.send("a")
    t0 = p.clock.now
    p.advance(KEEPALIVE_TIMEOUT - 0.2)
    assert p.keepalives("b") == []
    p.advance(0.5)
    ka = p.keepalives("b")
    assert len(ka) == 1 and ka[0] - t0 == pytest.approx(KEEPALIVE_TIMEOUT, abs=0.06)
    p.advance(60)
    assert len(p.keepalives("b")) == 1  # nothing more received, nothing more owed


def test_no_passive_keepalive_when_the_receiver_answers_with_data():
    p = Pair()
    p.send("a")
    p.advance(2)
    p.send("b", b"reply")
    p.advance(KEEPALIVE_TIMEOUT + 1)
    assert p.keepalives("b") == []


def test_new_handshake_when_sent_data_gets_no_reply():
    p = Pair()
    p.send("a")
    p.advance(30)  # b's passive keepalive answered; nothing pending
    p.drop = lambda sender, data: sender == "b"  # b's datagrams are lost from now on
    before = len(p.initiations("a"))
    sent_at = p.clock.now
    p.send("a")
    p.advance(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 0.1)
    new = p.initiations("a")[before:]
    assert len(new) == 1
    assert KEEPALIVE_TIMEOUT + REKEY_TIMEOUT <= new[0] - sent_at <= (
        KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 0.06)


def test_handshake_retries_with_jitter_then_gives_up():
    p = Pair()
    p.drop = lambda sender, data: sender == "a"  # b is unreachable
    p.send("a")
    p.advance(200)
    times = p.initiations("a")
    # the first initiation, then MAX_TIMER_HANDSHAKES + 1 retries (the kernel and wireguard-go count alike)
    assert len(times) == 1 + MAX_TIMER_HANDSHAKES + 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(REKEY_TIMEOUT <= g <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + 0.06 for g in gaps)
    assert len({round(g, 3) for g in gaps}) > 5, "retries must be jittered"
    assert not p.peer("a").staged, "staged packets are dropped on giving up"
    assert p.peer("a").t_zero_key_material is not None
    p.advance(600)
    assert len(p.initiations("a")) == len(times)  # no more attempts without new traffic
    p.send("a")
    assert len(p.initiations("a")) == len(times) + 1


def test_initiator_rekeys_after_rekey_after_time_and_old_session_drains():
    p = Pair()
    p.send("a")
    first = p.peer("a").current
    p.advance(REKEY_AFTER_TIME - 1, step=1)
    p.send("b")  # b keeps the link busy so no keepalive-driven handshake interferes
    assert len(p.initiations("a")) == 1
    p.advance(2)
    # a datagram sealed with the old session, held back and delivered after the rekey
    old_datagram = first.seal(ipv4_packet("10.1.0.1", "10.2.0.1", b"late"), 1420)
    p.send("a", b"fresh")
    assert len(p.initiations("a")) == 2
    assert p.peer("a").current is not first and p.peer("a").previous is first
    p.run("a", [])
    p.run("b", p.b.decapsulate(old_datagram, EP_A, p.clock.now))
    assert [pkt[20:] for pkt in p.tun["b"]][-2:] == [b"fresh", b"late"]


def test_responder_does_not_rekey_on_time_when_sending():
    p = Pair()
    p.send("a")
    p.advance(REKEY_AFTER_TIME + 1, step=1)
    p.send("b")
    assert p.initiations("b") == []


def test_initiator_rekeys_on_receive_near_the_end_of_the_session():
    p = Pair()
    p.send("a")
    created = p.peer("a").current.created
    p.advance(REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT - 1, step=1)  # idle session, 164 s old
    p.send("b")  # the responder resumes: no rekey yet
    assert len(p.initiations("a")) == 1
    p.advance(2, step=1)
    p.send("b")  # now older than REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT: the initiator rekeys
    assert len(p.initiations("a")) == 2
    assert p.peer("a").current.created > created
    p.send("b")
    assert len(p.initiations("a")) == 2  # once


def test_nothing_is_sent_or_accepted_after_reject_after_time():
    p = Pair()
    p.send("a")
    session = p.peer("a").current
    p.drop = lambda sender, data: data[0] in (1, 2)  # no new handshake can complete
    p.advance(REJECT_AFTER_TIME + 1, step=1)
    sent_before = len(p.wire.sent_by("a", kind=4))
    p.send("a", b"too late")
    assert len(p.wire.sent_by("a", kind=4)) == sent_before  # staged, not sealed with the expired keys
    assert p.peer("a").staged
    stale = session.seal(ipv4_packet("10.1.0.1", "10.2.0.1"), 1420)
    before = p.b.counters["drop_expired_session"]
    p.run("b", p.b.decapsulate(stale, EP_A, p.clock.now))
    assert p.b.counters["drop_expired_session"] == before + 1


def test_rekey_after_messages_and_reject_after_messages():
    p = Pair()
    p.send("a")
    p.peer("a").current.send_counter = REKEY_AFTER_MESSAGES + 1
    p.advance(REKEY_TIMEOUT + 1)
    before = len(p.initiations("a"))
    p.peer("a").current.send_counter = REKEY_AFTER_MESSAGES + 1
    p.send("a")
    assert len(p.initiations("a")) == before + 1  # sent the packet, then rekeyed
    q = Pair()
    q.send("a")
    q.advance(REKEY_TIMEOUT + 1)
    q.drop = lambda sender, data: data[0] in (1, 2)
    q.peer("a").current.send_counter = REJECT_AFTER_MESSAGES
    sent = len(q.wire.sent_by("a", kind=4))
    q.send("a")
    assert len(q.wire.sent_by("a", kind=4)) == sent and q.peer("a").staged


def test_key_material_is_zeroed_after_three_reject_after_times():
    p = Pair()
    p.send("a")
    p.advance(REJECT_AFTER_TIME * 3 + 1, step=1)
    for name in ("a", "b"):
        peer = p.peer(name)
        assert peer.current is None and peer.previous is None and peer.next is None
    assert not [i for i, v in p.a._indices.items()]  # every index forgotten


def test_persistent_keepalive_keeps_an_idle_link_warm():
    p = Pair(keepalive_a=25)
    start = len(p.keepalives("a"))
    p.advance(100, step=0.5)
    assert len(p.keepalives("a")) - start == 4


def test_endpoint_roams_to_the_latest_authenticated_source():
    p = Pair()
    p.send("a")
    p.src_override["a"] = ("203.0.113.77", 40000)
    p.endpoints["a"] = ("203.0.113.77", 40000)
    p.send("a")
    assert p.peer("b").endpoint == ("203.0.113.77", 40000)
    p.send("b", b"to the new place")
    assert p.wire.log[-1][3] == ("203.0.113.77", 40000)


def test_unauthenticated_packets_do_not_move_the_endpoint():
    p = Pair()
    p.send("a")
    forged = bytearray(p.wire.sent_by("a", kind=4)[-1][1])
    forged[-1] ^= 1
    p.b.decapsulate(bytes(forged), ("203.0.113.9", 1), p.clock.now)
    assert p.peer("b").endpoint == EP_A


def test_replayed_handshake_and_transport_are_dropped():
    p = Pair()
    p.send("a")
    init = p.wire.sent_by("a", kind=1)[0][1]
    data = p.wire.sent_by("a", kind=4)[0][1]
    p.advance(1)
    assert p.b.decapsulate(init, EP_A, p.clock.now) == []
    assert p.b.counters["drop_handshake_replay"] == 1
    assert p.b.decapsulate(data, EP_A, p.clock.now) == []
    assert p.b.counters["drop_replay"] == 1


def test_inner_source_outside_the_peers_allowed_ips_is_dropped():
    p = Pair()
    p.send("a")
    keypair = p.peer("a").current
    spoofed = keypair.seal(ipv4_packet("10.99.0.1", "10.2.0.1", b"spoof"), 1420)
    p.run("b", p.b.decapsulate(spoofed, EP_A, p.clock.now))
    assert p.b.counters["drop_source_not_allowed"] == 1
    assert all(pkt[20:] != b"spoof" for pkt in p.tun["b"])


def test_padding_to_16_and_trimmed_on_arrival():
    p = Pair()
    p.send("a", b"x")  # 21-byte IP packet
    data = p.wire.sent_by("a", kind=4)[-1][1]
    assert len(data) == 16 + 32 + 16  # header + padded plaintext + tag
    assert len(p.tun["b"][-1]) == 21


def test_packets_for_no_peer_or_not_ip_are_dropped_and_counted():
    p = Pair()
    assert p.a.encapsulate(ipv4_packet("10.1.0.1", "192.0.2.200"), p.clock.now) == []
    assert p.a.encapsulate(b"\x00" * 30, p.clock.now) == []
    assert p.a.counters["tun_drop_no_peer"] == 1 and p.a.counters["tun_drop_not_ip"] == 1


def test_cookie_reply_under_load_then_handshake_with_mac2():
    p = Pair()
    attacker = ("203.0.113.66", 9999)
    init = None

    def capture(sender, data):
        nonlocal init
        if data[0] == 1 and init is None:
            init = data
            return True
        return False

    p.drop = capture
    p.send("a")  # a's first initiation is captured, not delivered
    assert init is not None
    # an attacker replays garbage-timestamped initiations with a valid MAC1 from one address
    for _ in range(200):
        p.b.decapsulate(init, attacker, p.clock.now)
    assert p.b.under_load(p.clock.now)
    assert p.b.counters["tx_cookie_reply"] >= 1
    assert p.b.counters["drop_cookie_ratelimited"] > 0, "cookie replies to one source are rate limited"
    p.drop = lambda sender, data: False
    # the flood goes on (400 a second) while a retries: b answers a with a cookie, a's next retry carries MAC2
    for _ in range(int(2 * (REKEY_TIMEOUT + 0.5) / 0.05)):
        for _ in range(20):
            p.b.decapsulate(init, attacker, p.clock.now)
        p.advance(0.05)
        if p.peer("a").current is not None:
            break
    assert p.b.under_load(p.clock.now)
    assert p.a.counters["rx_cookie_reply"] >= 1
    assert p.peer("a").current is not None
    assert [pkt[20:] for pkt in p.tun["b"]] == [b"ping"]


def test_private_keys_never_appear_in_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="linker")
    p = Pair()
    p.send("a")
    p.advance(30)
    p.b.decapsulate(b"\x04\x00\x00\x00" + bytes(40), EP_A, p.clock.now)
    text = caplog.text
    assert "handshake complete" in text
    for dev in (p.a, p.b):
        secret = dev.identity.private.private_bytes_raw()
        assert to_base64(secret) not in text and secret.hex() not in text
