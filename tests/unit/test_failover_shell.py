"""The agent's failover shell with a fake clock, a fake AWS and fake sockets: probes out on the right socket,
witnesses' replies in, a takeover through AWS, announcements out and in, the slow path, AWS away."""

from __future__ import annotations

import json
from collections.abc import Callable

from linker.contract import Membership
from linker.gateway.actives import MoveSiteCidrs
from linker.gateway.cloud import NO_RECORD, ActiveRecord, CloudUnavailable
from linker.gateway.failover import COOLDOWN, HOLD, PROBE_INTERVAL
from linker.gateway.failover_events import FailedOver, StepDown
from linker.gateway.failover_shell import TUNNEL, VPC, Event, FailoverShell
from linker.gateway.failover_wire import Announcement, Probe, ProbeReply, RelayReply, RelayRequest, decode, encode
from linker.gateway.ha_membership import ha_view, remote_gateways

LINK, SITE, REMOTE = "prod", "us-east-1", "eu-west-1"
A, B, C, D = "i-0aaa", "i-0bbb", "i-0ccc", "i-0ddd"
ADDR = {A: "10.1.0.10", B: "10.1.1.10", C: "10.2.0.10", D: "10.2.1.10"}


def membership(sibling: str = B) -> Membership:
    def site(name: str, cidr: str, gws: list[str]) -> dict:
        return {"site": name, "region": name, "eip": "198.51.100.1", "cidrs": [cidr], "port": 51820,
                "gateway": gws[0], "ha": True,
                "gateways": [[g, f"{name}a", f"198.51.100.{i + 10}", ADDR.get(g, "10.1.2.10")]
                             for i, g in enumerate(gws)]}
    return Membership.from_json(json.dumps({"schema": 1, "link": LINK, "sites": [
        site(SITE, "10.1.0.0/16", [A, sibling]), site(REMOTE, "10.2.0.0/16", [C, D])]}))


class FakeCloud:
    def __init__(self, owner: str | None) -> None:
        self.tables = {"rtb-1": owner, "rtb-2": owner}
        self.record, self.up, self.switch = NO_RECORD, True, None

    def _check(self) -> None:
        if not self.up:
            raise CloudUnavailable("no route to ssm.us-east-1.amazonaws.com")

    def active_record(self, site: str | None = None, region: str | None = None) -> ActiveRecord:
        self._check()
        return self.record

    def write_active_record(self, instance: str) -> int:
        self._check()
        self.record = ActiveRecord(instance, self.record.epoch + 1, 0.0)
        return self.record.epoch

    def switch_request(self) -> tuple[str, int] | None:
        self._check()
        return self.switch

    def route_targets(self, instance: str, eni: str | None, sibling: str) -> tuple[tuple[str, str | None], ...]:
        self._check()
        return tuple(sorted(self.tables.items()))

    def move_routes(self, tables: tuple[str, ...], instance: str, eni: str | None = None) -> None:
        self._check()
        for t in tables:
            self.tables[t] = instance


class Rig:
    def __init__(self, me: str, owner: str | None) -> None:
        view = ha_view(membership(), SITE, me)
        assert view is not None
        self.cloud = FakeCloud(owner)
        self.sent: list[tuple[str, str, bytes]] = []
        self.events: list[Event] = []
        self.now = 0.0
        run: Callable[[Callable[[], None]], None] = lambda job: job()  # noqa: E731
        self.shell = FailoverShell(view, self.cloud, lambda p, a, d: self.sent.append((p, a, d)), run,
                                   self.events.append, first_nonce=1000, wall=lambda: 1.7e9 + self.now)

    def step(self, until: float, witness: Callable[[RelayRequest], bool | None] | None = None) -> None:
        """Tick every 0.1 s until ``until``; each relay request is answered by ``witness`` (None: no reply)."""
        while self.now < until:
            self.now = round(self.now + 0.1, 6)
            self.shell.tick(self.now)
            sent, self.sent = self.sent, []
            for path, address, data in sent:
                message = decode(data)
                if isinstance(message, RelayRequest) and witness is not None:
                    answered = witness(message)
                    if answered is not None:
                        self.shell.received(TUNNEL, encode(RelayReply(message.nonce, answered)), address, self.now)
                self.sent.append((path, address, data))

    def messages(self, kind: type) -> list[tuple[str, str, object]]:
        return [(p, a, m) for p, a, d in self.sent if isinstance(m := decode(d), kind)]


def test_the_route_target_becomes_active_records_and_announces_to_every_remote_gateway() -> None:
    rig = Rig(A, A)
    rig.step(0.3)
    assert rig.shell.role == "active"
    assert rig.cloud.record == ActiveRecord(A, 1, 0.0)
    announced = rig.messages(Announcement)
    assert {(p, a) for p, a, _ in announced} == {(TUNNEL, ADDR[C]), (TUNNEL, ADDR[D])}
    assert {m for _, _, m in announced} == {Announcement(LINK, SITE, A, 1)}
    assert rig.shell.failovers == 0  # the route target from the start: no failover


def test_probes_go_to_the_sibling_over_the_vpc_and_relay_requests_through_the_tunnel() -> None:
    rig = Rig(B, A)
    rig.step(PROBE_INTERVAL)
    assert [(p, a) for p, a, _ in rig.messages(Probe)] == [(VPC, ADDR[A])]
    assert {(p, a, m.target) for p, a, m in rig.messages(RelayRequest)} == {(TUNNEL, ADDR[C], ADDR[A]),
                                                                           (TUNNEL, ADDR[D], ADDR[A])}


def test_the_standby_takes_over_when_every_witness_reports_the_active_silent() -> None:
    rig = Rig(B, A)
    rig.step(COOLDOWN + 1, witness=lambda r: True)  # the active answers: nothing changes
    assert rig.shell.role == "standby" and rig.cloud.tables == {"rtb-1": A, "rtb-2": A}
    start = rig.now
    rig.step(start + HOLD + 2, witness=lambda r: False)
    assert rig.cloud.tables == {"rtb-1": B, "rtb-2": B}
    assert rig.cloud.record.instance == B and rig.shell.role == "active"
    failed = [e for e in rig.events if isinstance(e, FailedOver)]
    assert len(failed) == 1 and failed[0].previous == A and rig.shell.failovers == 1
    last = rig.shell.last_failover
    assert last is not None and last.previous == A and "unreachable" in last.reason  # no direct reply either
    assert last.gap is not None and HOLD <= last.gap <= HOLD + 2
    assert Announcement(LINK, SITE, B, rig.cloud.record.epoch) in {m for _, _, m in rig.messages(Announcement)}


def test_no_takeover_while_the_aws_api_is_away_and_the_active_answers() -> None:
    rig = Rig(B, A)
    rig.cloud.up = False
    rig.step(COOLDOWN + 10, witness=lambda r: True)
    assert rig.shell.role == "standby" and not rig.events


def test_a_witness_that_does_not_relay_decides_nothing() -> None:
    rig = Rig(B, A)
    rig.step(COOLDOWN + 10, witness=lambda r: None)
    assert rig.cloud.tables == {"rtb-1": A, "rtb-2": A} and not rig.events


def test_the_active_steps_down_when_the_routes_point_at_its_sibling() -> None:
    rig = Rig(A, A)
    rig.step(1.0)
    rig.cloud.tables = {"rtb-1": B, "rtb-2": B}
    rig.step(7.0)
    assert rig.shell.role == "standby"
    assert [e.to for e in rig.events if isinstance(e, StepDown)] == [B]


def test_the_vpc_socket_hears_only_the_sibling_and_the_relayer_answers_it() -> None:
    rig = Rig(A, A)
    rig.shell.received(VPC, encode(Probe(7)), "10.1.9.9", 0.0)  # a host of the VPC, not the sibling
    assert rig.sent == []
    rig.shell.received(VPC, encode(Probe(7)), ADDR[B], 0.0)
    assert rig.sent == [(VPC, ADDR[B], encode(ProbeReply(7)))]


def test_port_unreachable_from_the_sibling_counts_as_answered() -> None:
    rig = Rig(B, A)
    rig.step(0.1)
    (_, _, probe), = rig.messages(Probe)
    rig.shell.refused(VPC, encode(probe), ADDR[A], rig.now)  # type: ignore[arg-type]
    assert rig.shell.core._direct_ok is True


def test_announcements_from_the_tunnel_move_a_remote_sites_cidrs_by_the_epoch_rule() -> None:
    rig = Rig(A, A)
    data = encode(Announcement(LINK, REMOTE, D, 3))
    rig.shell.received(TUNNEL, data, ADDR[C], 0.0)  # D's announcement from C's address: forged
    rig.shell.received(TUNNEL, data, ADDR[D], 0.0)
    rig.shell.received(TUNNEL, data, ADDR[D], 0.1)  # a repeat
    rig.shell.received(TUNNEL, encode(Announcement(LINK, REMOTE, C, 2)), ADDR[C], 0.2)  # stale
    assert rig.events == [MoveSiteCidrs(REMOTE, D, 3)]


def test_the_slow_path_applies_remote_records_at_the_next_tick() -> None:
    rig = Rig(A, A)
    rig.shell.recorded({REMOTE: ActiveRecord(D, 5), "gone": ActiveRecord(C, 9), SITE: NO_RECORD})
    assert rig.events == []
    rig.step(0.1)
    assert [e for e in rig.events if isinstance(e, MoveSiteCidrs)] == [MoveSiteCidrs(REMOTE, D, 5)]


def test_a_planned_switch_moves_the_routes_without_the_hold() -> None:
    rig = Rig(B, A)
    rig.cloud.record = ActiveRecord(A, 4, 0.0)
    rig.cloud.switch = (B, 4)
    rig.step(2.0, witness=lambda r: True)
    assert rig.cloud.tables == {"rtb-1": B, "rtb-2": B} and rig.shell.role == "active"
    (failed,) = [e for e in rig.events if isinstance(e, FailedOver)]
    assert failed.gap is None and failed.epoch == 5


def test_a_restarted_agent_keeps_the_hysteresis_from_the_records_time() -> None:
    rig = Rig(B, A)
    rig.cloud.record = ActiveRecord(A, 2, 1.7e9 - 10)  # A took over 10 s before this agent started
    rig.step(COOLDOWN - 10 - 1, witness=lambda r: False)
    assert rig.cloud.tables == {"rtb-1": A, "rtb-2": A}
    rig.step(COOLDOWN, witness=lambda r: False)
    assert rig.cloud.tables == {"rtb-1": B, "rtb-2": B}


def test_a_new_sibling_from_the_membership() -> None:
    rig = Rig(A, A)
    view = ha_view(membership(sibling="i-0eee"), SITE, A)
    assert view is not None
    rig.shell.set_view(view)
    rig.step(0.6)
    assert rig.shell.core.sibling == "i-0eee"
    assert [a for _, a, _ in rig.messages(Probe)][-1] == "10.1.2.10"


def test_the_view_of_a_site_with_one_gateway_is_none() -> None:
    doc = Membership.from_json(json.dumps({"schema": 1, "link": LINK, "sites": [
        {"site": SITE, "region": SITE, "eip": "198.51.100.1", "cidrs": ["10.1.0.0/16"], "port": 51820}]}))
    assert ha_view(doc, SITE, A) is None
    assert ha_view(membership(), SITE, "i-0fff") is None  # not one of the site's gateways
    assert remote_gateways(membership(), SITE) == {REMOTE: {C: ADDR[C], D: ADDR[D]}}


def test_the_peers_of_a_remote_site_with_two_gateways() -> None:
    from linker.gateway.membership import PERSISTENT_KEEPALIVE, desired_peers

    keys = {C: b"\x03" * 32, D: b"\x04" * 32, REMOTE: b"\x03" * 32}
    before = desired_peers(membership(), SITE, keys)  # nothing applied: the lower id holds the CIDRs
    assert [(p.public_key, p.allowed_ips, p.endpoint) for p in before] == [
        (keys[C], (f"{ADDR[C]}/32", "10.2.0.0/16"), "198.51.100.10:51820"),
        (keys[D], (f"{ADDR[D]}/32",), "198.51.100.11:51820")]
    assert {p.persistent_keepalive for p in before} == {PERSISTENT_KEEPALIVE}
    after = desired_peers(membership(), SITE, keys, {REMOTE: D})
    assert [p.allowed_ips for p in after] == [(f"{ADDR[C]}/32",), (f"{ADDR[D]}/32", "10.2.0.0/16")]
    assert [p.public_key for p in desired_peers(membership(), SITE, {C: keys[C]}, {REMOTE: D})] == [keys[C]]


def test_a_job_that_raises_is_reported_as_failed_and_reads_go_on() -> None:
    rig = Rig(A, A)
    calls: list[int] = []

    def broken(*_: object) -> tuple:
        calls.append(1)
        raise KeyError("RouteTables")  # a reply AWS should not give

    rig.cloud.route_targets = broken  # type: ignore[method-assign, assignment]
    rig.step(40.0)
    assert len(calls) >= 3  # read again (backing off), never stuck waiting for an answer
    assert rig.shell.role == "standby"


def test_a_partition_between_the_two_gateways_causes_no_switch() -> None:
    rig = Rig(B, A)  # nothing answers B's direct probes; the witnesses see A alive
    rig.step(COOLDOWN + 10, witness=lambda r: True)
    assert rig.shell.core._direct_ok is False
    assert rig.cloud.tables == {"rtb-1": A, "rtb-2": A} and rig.shell.role == "standby" and not rig.events
