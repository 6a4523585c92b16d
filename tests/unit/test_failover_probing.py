"""Probes through a fake network: the prober, the witness's relay, the responder, and the core fed by them."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import pytest

from linker.gateway.failover import HOLD, PROBE_INTERVAL, Failover
from linker.gateway.failover_events import DirectProbe, RouteView, TakeOver, WitnessProbe
from linker.gateway.failover_wire import Probe, ProbeReply, RelayReply, RelayRequest, decode, encode
from linker.gateway.probing import DIRECT_TIMEOUT, MAX_RELAYS, RELAY_TIMEOUT, REQUEST_TIMEOUT, Prober, Relayer, Send

S, X, R = "10.0.2.10", "10.0.1.10", "10.9.1.10"  # standby and active of us-east-1, a gateway of eu-west-1
GATEWAYS = {"us-east-1": {"i-0aaa": X, "i-0bbb": S}, "eu-west-1": {"i-0ccc": R}}
VPC_DELAY, TUNNEL_DELAY = 0.001, 0.08


@dataclass
class Node:
    address: str
    relayer: Relayer
    prober: Prober | None = None
    host: bool = True
    dataplane: bool = True
    agent: bool = True
    tunnels: bool = True
    seen: list = field(default_factory=list)  # observations its prober produced


class Net:
    def __init__(self) -> None:
        self.now = 0.0
        self.nodes = {a: Node(a, Relayer(GATEWAYS, first_nonce=1000 * i)) for i, a in enumerate((S, X, R))}
        self.nodes[S].prober = Prober(X, {"eu-west-1": R}, first_nonce=2**64 - 2)  # wraps around
        self.partitioned = False
        self.queue: list = []
        self.seq = itertools.count()

    def carried(self, src: Node, dst: Node) -> tuple[bool, float]:
        if {src.address, dst.address} == {S, X}:  # the same VPC
            return src.host and dst.host and not self.partitioned, VPC_DELAY
        ends = all(n.host and n.dataplane and n.tunnels for n in (src, dst))
        return ends, TUNNEL_DELAY

    def send(self, src: Node, sends) -> None:
        for s in sends:
            dst = self.nodes[s.address]
            ok, delay = self.carried(src, dst)
            if ok:
                heapq.heappush(self.queue, (self.now + delay, next(self.seq), src, dst, s.data))

    def deliver(self, src: Node, dst: Node, data: bytes) -> None:
        if not dst.agent:  # its kernel answers: port unreachable, back along the same path
            ok, _ = self.carried(dst, src)
            if ok:
                if src.prober:
                    src.seen += src.prober.refused(data, dst.address, self.now)
                self.send(src, src.relayer.refused(data, dst.address, self.now))
            return
        if dst.prober:
            dst.seen += dst.prober.received(data, src.address, self.now)
        self.send(dst, dst.relayer.received(data, src.address, self.now))

    def run(self, seconds: float, core: Failover | None = None, actions: list | None = None) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + 0.05, 6)
            while self.queue and self.queue[0][0] <= self.now:
                _, _, src, dst, data = heapq.heappop(self.queue)
                self.deliver(src, dst, data)
            for node in self.nodes.values():
                if not node.agent:
                    continue
                self.send(node, node.relayer.tick(self.now))
                if node.prober:
                    for item in node.prober.tick(self.now):
                        if isinstance(item, Send):
                            self.send(node, (item,))
                        else:
                            node.seen.append(item)
            if core is not None:
                seen = self.nodes[S].seen
                for obs in seen:
                    core.observe(obs)
                seen.clear()
                actions += [(self.now, a) for a in core.tick(self.now) if isinstance(a, TakeOver)]

    def last(self, kind: type, seconds: float = 2.0) -> list:
        return [o for o in self.nodes[S].seen if isinstance(o, kind) and o.at > self.now - seconds]


def test_a_healthy_sibling_answers_directly_and_through_the_witness():
    net = Net()
    net.run(5)
    assert net.last(DirectProbe) and all(o.answered for o in net.last(DirectProbe))
    witness = net.last(WitnessProbe)
    assert len(witness) >= 3 and all(o.relayed and o.sibling_answered and o.witness == "eu-west-1" for o in witness)


def test_a_sibling_whose_agent_is_dead_is_answered_for_by_its_kernel():
    net = Net()
    net.nodes[X].agent = False
    net.run(5)
    assert all(o.answered for o in net.last(DirectProbe)) and net.last(DirectProbe)
    assert net.last(WitnessProbe) and all(o.relayed and o.sibling_answered for o in net.last(WitnessProbe))


def test_a_sibling_whose_data_plane_is_dead_is_silent_through_the_witness_only():
    net = Net()
    net.nodes[X].dataplane = False
    net.run(5)
    assert net.last(DirectProbe) and all(o.answered for o in net.last(DirectProbe))
    assert net.last(WitnessProbe) and all(o.relayed and not o.sibling_answered for o in net.last(WitnessProbe))


def test_a_partition_fails_the_direct_probe_only():
    net = Net()
    net.partitioned = True
    net.run(5)
    assert net.last(DirectProbe) and not any(o.answered for o in net.last(DirectProbe))
    assert net.last(WitnessProbe) and all(o.relayed and o.sibling_answered for o in net.last(WitnessProbe))


@pytest.mark.parametrize("cut", ["standby tunnels", "witness agent", "witness host"])
def test_without_a_working_witness_the_prober_reports_no_relay(cut):
    net = Net()
    if cut == "standby tunnels":
        net.nodes[S].tunnels = False
    elif cut == "witness agent":
        net.nodes[R].agent = False  # its kernel refuses at once
    else:
        net.nodes[R].host = False  # nothing comes back: the request expires
    net.run(5)
    witness = net.last(WitnessProbe)
    assert witness and not any(o.relayed for o in witness)


def test_the_core_fed_by_the_probes_takes_over_after_the_hold_when_the_data_plane_dies():
    net = Net()
    core = Failover("us-east-1", "i-0bbb", "i-0aaa")
    core.tick(0.0)
    core.observe(RouteView(0.0, (("rtb-1", "i-0aaa"),)))
    actions: list = []
    net.run(10, core, actions)
    assert actions == []
    net.nodes[X].dataplane = False
    died = net.now
    net.run(10, core, actions)
    [(at, takeover)] = actions
    assert takeover.tables == ("rtb-1",)
    # detection: the hold, after at most one probe interval and one relay timeout (and the relay's round trip)
    assert died + HOLD <= at <= died + PROBE_INTERVAL + RELAY_TIMEOUT + 2 * TUNNEL_DELAY + HOLD + 0.1


@pytest.mark.parametrize("change", ["agent dead", "partition"])
def test_the_core_fed_by_the_probes_does_not_take_over_when_the_data_plane_works(change):
    net = Net()
    core = Failover("us-east-1", "i-0bbb", "i-0aaa")
    core.tick(0.0)
    core.observe(RouteView(0.0, (("rtb-1", "i-0aaa"),)))
    if change == "agent dead":
        net.nodes[X].agent = False
    else:
        net.partitioned = True
    actions: list = []
    net.run(120, core, actions)
    assert actions == []


# --- what a relayer refuses ---

def relayer() -> Relayer:
    return Relayer(GATEWAYS, first_nonce=7)


def test_probes_are_answered_for_the_links_gateways_only():
    r = relayer()
    assert r.received(encode(Probe(5)), S, 0.0) == (Send(S, encode(ProbeReply(5))),)
    assert r.received(encode(Probe(5)), "10.0.1.99", 0.0) == ()  # a workload of the site, through a tunnel
    assert r.received(b"garbage", S, 0.0) == ()


def test_a_gateway_may_only_ask_about_its_own_sibling():
    r = relayer()
    assert r.received(encode(RelayRequest(1, X)), S, 0.0) == (Send(X, encode(Probe(7))),)
    assert r.received(encode(RelayRequest(2, R)), S, 0.0) == ()  # another site's gateway
    assert r.received(encode(RelayRequest(3, S)), S, 0.0) == ()  # itself
    assert r.received(encode(RelayRequest(4, "192.0.2.1")), S, 0.0) == ()  # anything else
    assert r.received(encode(RelayRequest(5, X)), "192.0.2.7", 0.0) == ()  # from outside the link


def test_a_relay_answers_once_on_the_reply_or_the_timeout():
    r = relayer()
    r.received(encode(RelayRequest(41, X)), S, 0.0)
    r.received(encode(RelayRequest(42, X)), S, 0.1)
    assert r.received(encode(ProbeReply(7)), R, 0.2) == ()  # not from the target
    assert r.received(encode(ProbeReply(7)), X, 0.2) == (Send(S, encode(RelayReply(41, True))),)
    assert r.received(encode(ProbeReply(7)), X, 0.3) == ()  # once
    assert r.tick(0.1 + RELAY_TIMEOUT - 0.01) == ()
    assert r.tick(0.1 + RELAY_TIMEOUT) == (Send(S, encode(RelayReply(42, False))),)
    assert r.tick(5.0) == ()


def test_a_relay_to_a_gateway_without_a_live_session_is_not_made():
    """At boot a witness may not have its peer for the active yet: silence would then be a false "silent", which
    once made a standby take over from a healthy active. Without a session the requester can only time out."""
    r = relayer()
    r.set_live(frozenset({R}))
    assert r.received(encode(RelayRequest(1, X)), S, 0.0) == ()
    assert r.tick(RELAY_TIMEOUT + 1) == ()  # and never reported silent
    r.set_live(frozenset({R, X}))
    assert r.received(encode(RelayRequest(2, X)), S, 2.0) == (Send(X, encode(Probe(7))),)


def test_relays_in_flight_are_bounded():
    r = relayer()
    sent = [r.received(encode(RelayRequest(n, X)), S, 0.0) for n in range(MAX_RELAYS + 10)]
    assert sum(1 for s in sent if s) == MAX_RELAYS
    assert len(r.tick(RELAY_TIMEOUT)) == MAX_RELAYS
    assert r.received(encode(RelayRequest(1, X)), S, 1.0) != ()


def test_a_prober_ignores_replies_that_are_late_foreign_or_from_the_wrong_address():
    p = Prober(X, {"eu-west-1": R}, first_nonce=100)
    sends = p.tick(0.0)
    assert [decode(s.data) for s in sends] == [Probe(100), RelayRequest(101, X)]
    assert p.received(encode(ProbeReply(100)), R, 0.1) == ()  # the direct reply comes from the sibling
    assert p.received(encode(RelayReply(101, True)), X, 0.1) == ()  # the relay reply comes from the witness
    assert p.received(encode(ProbeReply(999)), X, 0.1) == ()
    assert p.received(encode(RelayReply(101, False)), R, 0.2) == (WitnessProbe(0.2, "eu-west-1", True, False),)
    assert p.received(encode(RelayReply(101, True)), R, 0.3) == ()  # answered already
    assert p.tick(DIRECT_TIMEOUT) == (DirectProbe(DIRECT_TIMEOUT, False),)
    assert p.received(encode(ProbeReply(100)), X, 1.0) == ()  # too late: it was reported silent
    later = p.tick(0.5)
    assert [type(decode(s.data)) for s in later if isinstance(s, Send)] == [Probe, RelayRequest]
    assert WitnessProbe(0.5 + REQUEST_TIMEOUT, "eu-west-1", False) in p.tick(0.5 + REQUEST_TIMEOUT)
