"""The rollout as data (linker.control.rollout): the build pinned by tags, make before break, never-ready gateways."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from linker import __version__, naming
from linker.control.changes import Change, Phase, Ref
from linker.control.facts.model import Instance, RegionFacts
from linker.control.package import Package
from linker.control.plan import gateway_inputs, instance_config, plan
from linker.control.rollout import Rollout
from tests.control.test_plan import ACCOUNT, PACKAGE, SPEC, built, facts, kinds

NEWER = Package(f"linker-{__version__}-gateway.tar", b"newer", "cd" * 32)
E, W = "us-east-1", "eu-west-1"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC).timestamp()


def at(minutes_ago: float) -> str:
    return datetime.fromtimestamp(NOW - 60 * minutes_ago, tz=UTC).isoformat()


def ready_record(rf: RegionFacts, instance: str) -> RegionFacts:
    return replace(rf, parameters=(*rf.parameters, (naming.gateway_key_parameter("demo", rf.region, instance), "k")))


def with_instance(rf: RegionFacts, instance: Instance) -> RegionFacts:
    return replace(rf, instances=(*rf.instances, instance))


def of(changes: list[Change], region: str) -> list[Change]:
    return [c for c in changes if c.region == region]


def test_the_config_hash_leaves_the_build_out() -> None:
    inputs = gateway_inputs(SPEC, E, naming.bucket_name("demo", E, ACCOUNT), PACKAGE)
    other = gateway_inputs(SPEC, E, naming.bucket_name("demo", E, ACCOUNT), NEWER)
    assert instance_config(SPEC, inputs) == instance_config(SPEC, replace(other, version="9.9.9"))
    assert instance_config(SPEC, inputs) != instance_config(replace(SPEC, instance_type="t3.small"), inputs)
    assert instance_config(SPEC, inputs) != instance_config(SPEC, replace(inputs, port=51821))


def test_another_build_is_a_note_and_changes_nothing() -> None:
    changes = plan(SPEC, facts(built(SPEC, E), built(SPEC, W)), NEWER)
    assert kinds(changes) == [("note", "gateway-version")] * 2  # nothing uploaded, replaced or deleted
    note = of(changes, E)[0]
    assert note.target == f"i-{E}" and f"gateways of {E} run linker {__version__} (build abababababababab)" in (
        note.reason) and "(build cdcdcdcdcdcdcdcd)" in note.reason and "`linker up --upgrade`" in note.reason


def test_a_gateway_of_a_linker_before_the_pin_is_kept_with_a_note_and_its_wheel_too() -> None:
    def legacy(rf: RegionFacts) -> RegionFacts:
        (i,) = rf.instances
        old = tuple((k, v) for k, v in i.tags if k not in (naming.TAG_PACKAGE, naming.TAG_VERSION))
        old = tuple((k, "0123456789abcdef" if k == naming.TAG_CONFIG else v) for k, v in old)
        return replace(rf, instances=(replace(i, tags=old),))

    changes = plan(SPEC, facts(legacy(built(SPEC, E)), legacy(built(SPEC, W))), NEWER)
    assert kinds(changes) == [("note", "gateway-version")] * 2
    # it wrote no readiness record (its agent knew none): not taken for a gateway that never became ready
    assert plan(SPEC, facts(legacy(built(SPEC, E)), legacy(built(SPEC, W))), NEWER, Rollout(now=NOW)) == changes
    assert "an earlier linker" in changes[0].reason
    upgraded = of(plan(SPEC, facts(legacy(built(SPEC, E)), legacy(built(SPEC, W))), NEWER, Rollout(upgrade=True)), E)
    assert ("create", "instance") in kinds(upgraded) and ("delete", "package") in kinds(upgraded)


def test_an_upgrade_launches_waits_switches_publishes_then_retires() -> None:
    east = ready_record(built(SPEC, E), f"i-{E}")
    changes = of(plan(SPEC, facts(east, built(SPEC, W)), NEWER, Rollout(upgrade=True)), E)
    changes = sorted(changes, key=lambda c: c.phase)  # as they are applied: phase by phase, in plan order within
    order = [(c.phase, c.action, c.kind) for c in changes]
    launch = order.index((Phase.GATEWAY, "create", "instance"))
    wait = order.index((Phase.GATEWAY, "update", "instance-ready"))
    move = order.index((Phase.SWITCH, "update", "eip-association"))
    route = order.index((Phase.SWITCH, "update", "route"))
    publish = order.index((Phase.MEMBERSHIP, "update", "membership"))
    retire = order.index((Phase.CLEANUP, "delete", "instance"))
    assert launch < wait < move < route < publish < retire
    ready = changes[wait]
    assert ready.param("instance") == Ref("instance", E) and ready.param("serving") == f"i-{E}"
    entries = {e.site: e.gateway for e in changes[publish].param("entries")}
    assert entries == {E: Ref("instance", E), W: Ref("instance", W)}  # each site upgraded, each made before broken
    cleanup = [(c.kind, c.target, c.param("key")) for c in changes if c.phase == Phase.CLEANUP]
    assert ("parameter", naming.gateway_key_parameter("demo", E, f"i-{E}"), None) in cleanup
    assert ("package", naming.bucket_name("demo", E, ACCOUNT), PACKAGE.key) in cleanup
    pin = dict(changes[launch].param("pin"))
    assert pin == {naming.TAG_VERSION: __version__, naming.TAG_PACKAGE: NEWER.key}


def test_a_fresh_site_does_not_wait_for_readiness() -> None:
    from tests.control.test_plan import bare

    assert ("update", "instance-ready") not in kinds(plan(SPEC, facts(bare(E), bare(W)), PACKAGE))


def test_a_gateway_never_ready_is_replaced_after_the_deadline_only() -> None:
    rollout = Rollout(now=NOW)
    (i,) = built(SPEC, E).instances

    def east(minutes_ago: float, is_ready: bool) -> RegionFacts:
        rf = replace(built(SPEC, E), instances=(replace(i, launch_time=at(minutes_ago)),))
        return ready_record(rf, i.id) if is_ready else rf

    west = ready_record(built(SPEC, W), f"i-{W}")
    assert plan(SPEC, facts(east(5, False), west), PACKAGE, rollout) == []  # still booting: kept
    assert plan(SPEC, facts(east(60, True), west), PACKAGE, rollout) == []  # ready once: kept
    changes = of(plan(SPEC, facts(east(11, False), west), PACKAGE, rollout), E)
    assert ("create", "instance") in kinds(changes) and ("update", "instance-ready") in kinds(changes)
    assert next(c for c in changes if c.kind == "instance" and c.action == "delete").target == i.id
    shorter = replace(rollout, unready_after=60.0)
    assert ("create", "instance") in kinds(plan(SPEC, facts(east(2, False), west), PACKAGE, shorter))


def test_a_successor_left_by_a_failed_wait_is_awaited_again_not_launched_again() -> None:
    east = ready_record(built(SPEC, E), f"i-{E}")
    (old,) = east.instances
    newer_tags = tuple((k, NEWER.key if k == naming.TAG_PACKAGE else v) for k, v in old.tags)
    successor = replace(old, id="i-next", eni_id="eni-next", launch_time="2026-02-01", tags=newer_tags)
    # both on the same build: the ready one is kept, the unready successor goes
    same = replace(east, instances=(replace(old, tags=newer_tags), successor))
    changes = of(plan(SPEC, facts(same, built(SPEC, W)), NEWER), E)
    assert ("create", "instance") not in kinds(changes)
    assert [c.target for c in changes if c.kind == "instance" and c.action == "delete"] == ["i-next"]
    # upgrading: the successor on the new build is kept and awaited
    east = with_instance(east, successor)
    changes = of(plan(SPEC, facts(east, built(SPEC, W)), NEWER, Rollout(upgrade=True)), E)
    assert ("create", "instance") not in kinds(changes)
    wait = next(c for c in changes if c.kind == "instance-ready")
    assert wait.param("instance") == "i-next" and wait.phase == Phase.GATEWAY
    assert next(c for c in changes if c.kind == "eip-association").param("instance") == "i-next"
    assert [c.target for c in changes if c.kind == "instance" and c.action == "delete"] == [f"i-{E}"]


def test_a_membership_without_gateways_is_seeded_with_the_serving_ones_before_a_replacement() -> None:
    from linker.control.membership_doc import PlannedSite, membership_of
    from tests.control.test_plan import CIDR, IP

    legacy = membership_of("demo", [PlannedSite(r, r, IP[r], (CIDR[r],), SPEC.port) for r in (E, W)]).to_json()
    east, west = (replace(built(SPEC, r), parameters=((naming.membership_parameter("demo"), legacy),))
                  for r in (E, W))
    changes = plan(SPEC, facts(east, west), NEWER, Rollout(upgrade=True))
    seed = next(c for c in of(changes, W) if c.phase == Phase.SEED)
    assert {e.site: e.gateway for e in seed.param("entries")} == {E: f"i-{E}", W: f"i-{W}"}
