"""The failover core with a fake clock: who becomes active and when (docs/HA.md, failure kinds 1-6)."""

import itertools

import pytest

from linker.gateway.failover import COOLDOWN, HOLD, PROBE_INTERVAL, ROUTE_POLL, Role
from linker.gateway.failover_events import Announce, FailedOver, ReadRoutes, StepDown, TakeOver
from tests.unit.failover_sim import SITE, A, B, healthy_pair

TEN_MINUTES = 600.0


def test_a_healthy_pair_keeps_its_active_and_announces_nothing_new():
    sim = healthy_pair()
    sim.run(TEN_MINUTES)
    assert sim.takeovers() == []
    assert (sim.gw[A].core.role, sim.gw[B].core.role) == (Role.ACTIVE, Role.STANDBY)
    assert {a.epoch for _, a in sim.gw[A].of(Announce)} == {1}  # the restarted-agent path: heartbeats, epoch 1
    assert sim.gw[B].of(Announce) == [] and sim.gw[B].of(StepDown) == []


@pytest.mark.parametrize("kind", ["stopped", "network cut", "daemon frozen"])
def test_the_active_failing_makes_exactly_one_takeover_after_the_hold_time(kind):
    sim = healthy_pair()
    failed_at = sim.now
    if kind == "daemon frozen":
        sim.gw[A].dataplane_up = False  # agent alive, data plane dead
    else:
        sim.gw[A].host_up = False
        sim.gw[A].agent_up = kind != "stopped"
    sim.run(60)
    [(who, at, takeover)] = sim.takeovers()
    assert who == B
    assert failed_at + HOLD <= at <= failed_at + HOLD + 2 * PROBE_INTERVAL + 0.2
    assert takeover.tables == ("rtb-1", "rtb-2")
    assert sim.aws.tables == {"rtb-1": B, "rtb-2": B} and sim.aws.record == (B, 2)
    [(_, failed_over)] = sim.gw[B].of(FailedOver)
    assert failed_over.previous == A and failed_over.epoch == 2
    assert HOLD <= failed_over.gap <= HOLD + 2 * PROBE_INTERVAL + 0.2
    assert ("unreachable" in failed_over.reason) == (kind != "daemon frozen")
    assert sim.remote.active(SITE) == (B, 2)  # the remote moved the site's CIDRs at the first announcement
    [(moved_at, _)] = [m for m in sim.moves if m[1].instance == B]
    assert moved_at == at
    if kind == "daemon frozen":  # the frozen gateway's agent reads the routes and steps down
        [(down_at, step_down)] = sim.gw[A].of(StepDown)
        assert step_down.to == B and down_at <= at + ROUTE_POLL + 0.2
        assert all(a.epoch == 1 for t, a in sim.gw[A].of(Announce))


def test_a_cut_off_active_steps_down_when_it_comes_back_and_no_failback_follows():
    sim = healthy_pair()
    sim.gw[A].host_up = False
    sim.run(30)
    sim.gw[A].host_up = True
    sim.run(TEN_MINUTES)
    assert [who for who, _, _ in sim.takeovers()] == [B]
    assert [a.to for _, a in sim.gw[A].of(StepDown)] == [B]
    assert sim.gw[A].core.role is Role.STANDBY and sim.aws.tables == {"rtb-1": B, "rtb-2": B}
    assert sim.remote.active(SITE) == (B, 2)


def test_a_restarted_old_active_becomes_standby():
    sim = healthy_pair()
    sim.gw[A].host_up = sim.gw[A].agent_up = False
    sim.run(30)
    sim.restart_agent(A)
    sim.gw[A].host_up = sim.gw[A].agent_up = True
    sim.run(TEN_MINUTES)
    assert [who for who, _, _ in sim.takeovers()] == [B]
    assert sim.gw[A].core.role is Role.STANDBY and sim.gw[A].of(Announce)[-1][0] < 11


def test_a_partition_between_the_two_gateways_switches_nothing():
    sim = healthy_pair()
    sim.partitioned = True  # the direct path fails both ways; the witnesses see both
    sim.run(TEN_MINUTES)
    assert sim.takeovers() == [] and sim.aws.switches == []


@pytest.mark.parametrize("active_also_dies", [False, True])
def test_an_isolated_standby_never_takes_over(active_also_dies):
    sim = healthy_pair()
    sim.gw[B].tunnels_up = False  # its own tunnels to the witness are down
    sim.partitioned = True  # and it cannot reach the active directly either
    if active_also_dies:
        sim.gw[A].dataplane_up = False
    sim.run(TEN_MINUTES)
    assert sim.takeovers() == []


def test_a_dead_witness_agent_decides_nothing():
    sim = healthy_pair()
    sim.witness_agent_up = False
    sim.gw[A].dataplane_up = False
    sim.run(TEN_MINUTES)
    assert sim.takeovers() == []


def test_the_active_agent_dead_with_its_daemon_fine_switches_nothing_and_its_restart_resumes_heartbeats():
    sim = healthy_pair()
    sim.gw[A].agent_up = False  # probes are answered by its kernel (port unreachable): the data plane works
    sim.run(TEN_MINUTES)
    assert sim.takeovers() == []
    sim.restart_agent(A)
    sim.gw[A].agent_up = True
    restarted = sim.now
    sim.run(30)
    assert sim.gw[A].core.role is Role.ACTIVE and sim.gw[A].core.epoch == 1
    assert next(t for t, _ in sim.gw[A].of(Announce) if t > restarted) <= restarted + 0.2
    assert sim.gw[A].of(TakeOver) == [] and sim.aws.record == (A, 1)


def test_aws_unreachable_changes_nothing_and_reads_back_off():
    sim = healthy_pair()
    sim.aws.api_up = False
    start = sim.now
    sim.run(60)
    assert sim.takeovers() == [] and sim.gw[A].of(StepDown) == [] and sim.gw[B].of(StepDown) == []
    reads = [t for t, _ in sim.gw[B].of(ReadRoutes) if t > start]
    assert 3 <= len(reads) <= 5  # 10, 20, 30 s apart: backing off, not hammering
    assert (sim.gw[A].core.role, sim.gw[B].core.role) == (Role.ACTIVE, Role.STANDBY)


def test_a_takeover_without_the_api_moves_nothing_announces_nothing_and_is_retried():
    sim = healthy_pair()
    sim.aws.api_up = False
    sim.gw[A].dataplane_up = False
    sim.run(60)
    attempts = [t for _, t, _ in sim.takeovers()]
    assert 4 <= len(attempts) <= 10  # retried with backoff, 1 s doubling to 10 s
    assert sim.aws.tables == {"rtb-1": A, "rtb-2": A} and sim.aws.record == (A, 1)
    assert sim.gw[B].of(Announce) == [] and sim.remote.active(SITE) == (A, 1)
    sim.aws.api_up = True
    back = sim.now
    sim.run(30)
    assert sim.aws.tables == {"rtb-1": B, "rtb-2": B} and sim.remote.active(SITE) == (B, 2)
    assert sim.gw[B].of(Announce)[0][0] <= back + 10.2


def test_hysteresis_allows_at_most_one_switch_per_minute_with_a_flapping_active():
    sim = healthy_pair()
    for _ in range(60):  # 10 minutes: whoever is active loses its data plane for 5 s of every 10
        active = sim.aws.owner()
        sim.gw[active].dataplane_up = False
        sim.run(5)
        sim.gw[active].dataplane_up = True
        sim.run(5)
    times = [t for t, _ in sim.aws.switches]
    assert len(times) >= 2  # it does switch, but not more often than COOLDOWN
    assert all(b - a >= COOLDOWN for a, b in itertools.pairwise(times))
    owner = sim.aws.owner()
    assert sim.remote.active(SITE)[0] == owner and sim.gw[owner].core.role is Role.ACTIVE


def test_a_restarted_standby_keeps_the_hysteresis_it_is_given():
    from linker.gateway.failover import Failover
    sim = healthy_pair()
    sim.gw[B].core = Failover(SITE, B, A, last_switch_at=sim.now)
    sim.gw[A].dataplane_up = False
    sim.run(COOLDOWN - 1)
    assert sim.takeovers() == []
    sim.run(5)
    assert [who for who, _, _ in sim.takeovers()] == [B]


def test_one_witness_that_still_sees_the_active_is_enough_to_keep_it():
    from linker.gateway.failover import Failover
    from linker.gateway.failover_events import RouteView, WitnessProbe
    core = Failover(SITE, B, A)
    core.tick(0.0)
    core.observe(RouteView(0.0, (("rtb-1", A),)))
    actions = []
    for step in range(1, 1200):  # ten minutes: eu-west-1 cannot reach the active, ap-south-1 can
        now = step * 0.5
        core.observe(WitnessProbe(now, "eu-west-1", relayed=True, sibling_answered=False))
        core.observe(WitnessProbe(now, "ap-south-1", relayed=True, sibling_answered=True))
        actions += core.tick(now)
    assert not any(isinstance(a, TakeOver) for a in actions)


def test_the_active_keeps_its_role_and_epoch_when_its_standby_is_replaced():
    from linker.gateway.failover_events import RouteView
    sim = healthy_pair()
    active = sim.gw[A].core
    active.set_sibling("i-0ccc")  # the standby was replaced
    assert active.role is Role.ACTIVE and active.epoch == 1 and active.sibling == "i-0ccc"
    active.observe(RouteView(sim.now, (("rtb-1", A), ("rtb-2", A))))
    assert active.role is Role.ACTIVE
    with pytest.raises(ValueError):
        active.set_sibling(A)
