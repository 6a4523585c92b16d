"""Split brain and races: at most one gateway of a site wins, and the same one whatever the order of events."""

import heapq
import itertools
import random

import pytest

from linker.gateway.actives import MoveSiteCidrs, RemoteActives
from linker.gateway.failover import Failover, Role
from linker.gateway.failover_events import (
    Action,
    ActiveRecordRead,
    Announce,
    FailedOver,
    PlannedSwitch,
    ReadRoutes,
    RecordActive,
    RecordWritten,
    RouteMoveFailed,
    RouteReadFailed,
    RoutesMoved,
    RouteView,
    StepDown,
    TakeOver,
    WitnessProbe,
)
from linker.gateway.failover_wire import Announcement
from tests.unit.failover_sim import ADDRESS, LINK, SITE, A, B, Sim, healthy_pair


@pytest.mark.parametrize("order", [(A, B), (B, A)])
@pytest.mark.parametrize("targets", [None, "i-0old"])  # first setup; a gateway that was replaced
def test_with_no_owner_the_lower_instance_id_claims_in_any_order(order, targets):
    sim = Sim({"rtb-1": targets, "rtb-2": targets})
    sim.order = order
    sim.run(120)
    assert [(who, t.tables) for who, _, t in sim.takeovers()] == [(A, ("rtb-1", "rtb-2"))]
    assert sim.aws.tables == {"rtb-1": A, "rtb-2": A} and sim.aws.record == (A, 1)
    assert (sim.gw[A].core.role, sim.gw[B].core.role) == (Role.ACTIVE, Role.STANDBY)
    assert sim.remote.active(SITE) == (A, 1)


def test_with_no_owner_and_the_lower_id_dead_the_higher_claims_after_the_hold():
    sim = Sim({"rtb-1": None})
    sim.gw[A].host_up = sim.gw[A].agent_up = False
    sim.run(30)
    assert [who for who, _, _ in sim.takeovers()] == [B] and sim.aws.owner() == B


@pytest.mark.parametrize("order", [(A, B), (B, A)])
def test_a_half_moved_route_state_is_finished_by_the_lower_id(order):
    sim = Sim({"rtb-1": A, "rtb-2": B}, (B, 7))
    sim.order = order
    sim.run(60)
    assert sim.aws.owner() == A and sim.aws.record == (A, 8)
    assert [who for who, _, _ in sim.takeovers()] == [A]
    assert sim.remote.active(SITE) == (A, 8)


def test_two_gateways_believing_they_are_active_resolve_to_the_route_target_whatever_the_order():
    sim = healthy_pair()
    sim.gw[A].dataplane_up = False
    sim.run(3.6)  # B takes over; A still believes it is active until its next route read
    sim.gw[A].dataplane_up = True
    assert sim.gw[A].core.role is Role.ACTIVE and sim.gw[B].core.role is Role.ACTIVE
    sim.run(10)
    assert sim.gw[A].core.role is Role.STANDBY and sim.aws.owner() == B
    announced = [(ADDRESS[n], a) for n in (A, B) for _, a in sim.gw[n].of(Announce)]
    for perm in itertools.permutations(announced[-6:]):  # both announcers' datagrams, in every order
        remote = RemoteActives(LINK, {SITE: ADDRESS})
        remote.recorded(SITE, A, 1)
        for source, a in perm:
            remote.announced(Announcement(LINK, a.site, a.instance, a.epoch), source)
        assert remote.active(SITE) == (B, 2)


def test_a_stale_active_never_moves_routes_away_from_itself_nor_back():
    sim = healthy_pair()
    core = sim.gw[A].core
    assert core.observe(RouteView(sim.now, (("rtb-1", B), ("rtb-2", B)))) == (StepDown(B, "the route tables point "
                                                                                             "at i-0bbb"),)
    assert all(not isinstance(a, TakeOver) for a in core.tick(sim.now + 1))


# --- planned switch ---

def test_a_planned_switch_takes_over_at_once_without_hold_or_hysteresis():
    sim = healthy_pair()
    sim.gw[B].core.observe(PlannedSwitch(sim.now, B, 1))
    asked = sim.now
    sim.run(2)
    [(who, at, _)] = sim.takeovers()
    assert who == B and at <= asked + 0.2
    assert sim.remote.active(SITE) == (B, 2)
    [(_, failed_over)] = sim.gw[B].of(FailedOver)
    assert failed_over.reason == "planned switch" and failed_over.gap is None


def test_a_planned_switch_request_is_void_after_any_later_switch():
    sim = healthy_pair()
    sim.gw[B].core.observe(PlannedSwitch(sim.now, B, 1))
    sim.run(5)
    sim.gw[A].core.observe(PlannedSwitch(sim.now, A, 2))  # back to A (epoch 2 is current), once A has read it
    sim.run(10)
    assert sim.aws.owner() == A and sim.aws.record == (A, 3)
    for name in (A, B):  # the old requests, read again from SSM, change nothing
        sim.gw[name].core.observe(PlannedSwitch(sim.now, B, 1))
        sim.gw[name].core.observe(PlannedSwitch(sim.now, B, 2))
    sim.run(120)
    assert sim.aws.owner() == A and len(sim.takeovers()) == 2


def test_a_planned_switch_waits_for_the_standby_tunnels_to_work():
    sim = healthy_pair()
    sim.gw[B].tunnels_up = False
    sim.run(2)  # its last relay is no longer fresh
    sim.gw[B].core.observe(PlannedSwitch(sim.now, B, 1))
    sim.run(10)
    assert sim.takeovers() == []
    sim.gw[B].tunnels_up = True
    sim.run(2)
    assert [who for who, _, _ in sim.takeovers()] == [B]


# --- concurrent claims, with AWS calls that take random time ---

class SlowAws(Sim):
    """Every AWS call and every datagram takes a random time; each ReplaceRoute of a TakeOver lands on its own."""

    def __init__(self, seed: int, tables):
        super().__init__(tables)
        self.rng = random.Random(seed)
        self.events: list = []
        self.seq = itertools.count()

    def later(self, delay: float, fn) -> None:
        heapq.heappush(self.events, (self.now + delay, next(self.seq), fn))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            while self.events and self.events[0][0] <= self.now + 0.1:
                _, _, fn = heapq.heappop(self.events)
                fn()
            super().run(0.1)

    def _observe(self, name: str, *observations) -> None:
        for obs in observations:
            self._handle(name, self.gw[name].core.observe(obs))

    def _handle(self, name: str, actions: tuple[Action, ...]) -> None:
        g, r = self.gw[name], self.rng.uniform
        for action in actions:
            g.actions.append((self.now, action))
            if isinstance(action, ReadRoutes):
                self.later(r(0, 0.3), lambda n=name: self._read_record(n))
            elif isinstance(action, TakeOver):
                delays = [r(0, 1.0) for _ in action.tables]
                for table, d in zip(action.tables, delays, strict=True):
                    self.later(d, lambda t=table, n=name: self.aws.move(self.now, n, (t,)))
                self.later(max(delays, default=0) + r(0, 0.2),
                           lambda n=name: self._observe(n, RoutesMoved(self.now)))
            elif isinstance(action, RecordActive):
                self.later(r(0, 0.3), lambda n=name: self._write_record(n))
            elif isinstance(action, Announce):
                self.later(r(0, 0.3), lambda a=action, n=name: self._deliver(a, n))

    def _read_record(self, name: str) -> None:
        record = self.aws.record
        self.later(self.rng.uniform(0, 0.3), lambda: self._read_tables(name, record))

    def _read_tables(self, name: str, record) -> None:
        tables = tuple(sorted(self.aws.tables.items()))
        self.later(self.rng.uniform(0, 0.2), lambda: self._observe(
            name, ActiveRecordRead(self.now, *record), RouteView(self.now, tables)))

    def _write_record(self, name: str) -> None:
        version = self.aws.write_record(name)
        self.later(self.rng.uniform(0, 0.2), lambda: self._observe(name, RecordWritten(self.now, version)))

    def _deliver(self, a: Announce, name: str) -> None:
        verdict = self.remote.announced(Announcement(LINK, a.site, a.instance, a.epoch), ADDRESS[name])
        if isinstance(verdict, MoveSiteCidrs):
            self.moves.append((self.now, verdict))


@pytest.mark.parametrize("tables", [1, 3])
@pytest.mark.parametrize("seed", range(60))
def test_concurrent_claims_converge_on_one_active_that_everyone_agrees_on(seed, tables):
    sim = SlowAws(seed, {f"rtb-{i}": None for i in range(tables)})
    rng = random.Random(seed)
    sim.gw[A].tunnels_up = False  # A cannot claim yet; B sees A silent and claims after the hold
    sim.order = (A, B) if seed % 2 else (B, A)
    sim.run(HOLD_NEAR := 3.0 + rng.uniform(0, 1.0))
    sim.gw[A].tunnels_up = True  # ... and A may claim in the same instant
    sim.run(60 - HOLD_NEAR)
    owner = sim.aws.owner()
    assert owner in (A, B)
    roles = {n: sim.gw[n].core.role for n in (A, B)}
    assert roles[owner] is Role.ACTIVE and roles[B if owner == A else A] is Role.STANDBY
    assert sim.aws.record[0] == owner
    assert sim.remote.active(SITE) == (owner, sim.aws.record[1])
    assert len(sim.aws.switches) <= 3


def test_a_core_refuses_to_be_its_own_sibling():
    with pytest.raises(ValueError):
        Failover(SITE, A, A)


# --- the same races, event by event on one core ---

def _standby(instance: str, sibling: str, owner: str | None, epoch: int) -> Failover:
    core = Failover(SITE, instance, sibling)
    core.tick(0.0)
    core.observe(ActiveRecordRead(0.0, owner, epoch))
    core.observe(RouteView(0.0, (("rtb-1", owner),)))
    core.observe(WitnessProbe(0.0, "eu-west-1", relayed=True, sibling_answered=True))
    return core


def test_the_route_target_corrects_a_newer_record_that_names_the_loser_of_a_race():
    core = _standby(B, A, A, 4)
    core.observe(PlannedSwitch(0.1, B, 4))
    assert isinstance(core.tick(0.2)[0], TakeOver)
    assert core.observe(RoutesMoved(0.5)) == (RecordActive("planned switch"),)
    assert core.observe(RecordWritten(0.6, 5))[0] == Announce(SITE, B, 5)
    # A moved the routes too and wrote its record after B's; B's ReplaceRoute was the later one
    assert core.observe(ActiveRecordRead(0.7, A, 6)) == ()
    [correct] = core.observe(RouteView(0.8, (("rtb-1", B),)))
    assert isinstance(correct, RecordActive)
    assert core.observe(RecordWritten(0.9, 7)) == (Announce(SITE, B, 7),)
    assert core.role is Role.ACTIVE and core.epoch == 7


def test_the_loser_of_a_race_announces_nothing_after_it_read_the_routes():
    core = _standby(A, B, None, 0)
    [takeover] = [a for a in core.tick(0.5) if isinstance(a, TakeOver)]
    assert core.observe(RoutesMoved(0.6)) == (RecordActive(takeover.reason),)
    assert core.observe(RouteView(0.7, (("rtb-1", B),)))[0].to == B
    assert core.observe(RecordWritten(0.8, 3)) == ()
    assert not any(isinstance(a, (Announce, TakeOver)) for t in range(1, 120) for a in core.tick(0.8 + t))


def test_a_claim_of_unowned_routes_stops_when_the_sibling_took_them_first():
    core = _standby(A, B, None, 0)
    assert any(isinstance(a, TakeOver) for a in core.tick(0.5))
    core.observe(RouteMoveFailed(0.6, "throttled"))
    assert core.observe(RouteView(0.7, (("rtb-1", B),)))[0].to == B
    assert core.role is Role.STANDBY
    assert not any(isinstance(a, TakeOver) for t in range(1, 120) for a in core.tick(0.7 + t))


def test_a_failover_claim_keeps_retrying_while_its_route_moves_fail():
    core = _standby(B, A, A, 1)
    core.observe(WitnessProbe(0.5, "eu-west-1", relayed=True, sibling_answered=False))
    takeovers = []
    now = 0.5
    while now < 30:
        now = round(now + 0.5, 3)
        core.observe(WitnessProbe(now, "eu-west-1", relayed=True, sibling_answered=False))
        for a in core.tick(now):
            if isinstance(a, TakeOver):
                takeovers.append(now)
                core.observe(RouteMoveFailed(now, "unreachable"))
            elif isinstance(a, ReadRoutes):
                core.observe(RouteReadFailed(now, "unreachable"))
    assert takeovers[0] == 3.5 and 4 <= len(takeovers) <= 7
    assert core.role is Role.CLAIMING
