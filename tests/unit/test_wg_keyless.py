"""A device with no private key yet (``linker-wg`` starts so, as wireguard-go does, until `wg setconf`): it sends
and answers no handshake message, `get` shows no key, and once a key is set over the UAPI it works as any other."""

from __future__ import annotations

import os

from linker.dataplane.uapi import handle_request
from linker.wg.actions import SendDatagram
from linker.wg.device import Device
from linker.wg.keys import generate_private_key
from tests.pair.harness import EP_A, EP_B, Pair, ipv4_packet
from tests.unit.test_dataplane_uapi import FakeHost


def keyless_pair() -> tuple[Pair, bytes]:
    """A pair whose ``a`` is replaced by a keyless device that knows ``b`` (its key is set later)."""
    p = Pair(seed=3)
    key = p.a.private_key
    p.a = Device(None, rng=p.rand.randbytes, wallclock=p.clock.wall)
    p.devices["a"] = p.a
    p.a.set_peer(p.b.public_key, p.clock.now, endpoint=EP_B, allowed_ips=["10.2.0.0/16"])
    return p, key


def test_a_keyless_device_neither_initiates_nor_answers() -> None:
    p, _ = keyless_pair()
    assert not p.a.keyed
    p.send("a")
    p.advance(12)  # the retry timers fire
    assert p.wire.sent_by("a") == []
    p.send("b")  # b initiates towards a, which drops it: it has no key to answer with
    assert p.wire.sent_by("a") == [] and p.a.counters["drop_no_private_key"] >= 1
    assert p.tun["a"] == []


def test_get_shows_no_key_until_one_is_set_then_the_tunnel_works() -> None:
    p, key = keyless_pair()
    host = FakeHost()
    reply, _, _ = handle_request(p.a, host, "get=1\n\n", p.clock.now)
    assert "private_key=" not in reply and reply.endswith("errno=0\n\n")
    reply, _, changed = handle_request(p.a, host, f"set=1\nprivate_key={key.hex()}\n\n", p.clock.now)
    assert reply == "errno=0\n\n" and changed and p.a.keyed
    assert f"private_key={key.hex()}" in handle_request(p.a, host, "get=1\n\n", p.clock.now)[0]
    p.send("a", b"hello")
    assert [pkt[20:] for pkt in p.tun["b"]] == [b"hello"]


def test_a_keyless_device_ignores_its_placeholder_identity() -> None:
    """The placeholder never answers: an initiation made for its public key is dropped as well."""
    d = Device(None, rng=os.urandom, wallclock=lambda: 1.0)
    other = Device(generate_private_key(os.urandom), rng=os.urandom, wallclock=lambda: 1.0)
    other.set_peer(d.public_key, 0.0, endpoint=EP_A, allowed_ips=["10.9.0.0/16"])
    d.set_peer(other.public_key, 0.0, endpoint=EP_B, allowed_ips=["10.8.0.0/16"])
    sent = [a for a in other.encapsulate(ipv4_packet("10.8.0.1", "10.9.0.1"), 0.0) if isinstance(a, SendDatagram)]
    assert sent, "the other side initiates"
    assert d.decapsulate(sent[0].data, EP_B, 0.0) == []
    assert d.counters["drop_no_private_key"] == 1
