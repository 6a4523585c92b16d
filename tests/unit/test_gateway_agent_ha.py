"""The agent's part in a site with two gateways: the failover loop runs only for one of its site's two gateways,
remote sites' CIDRs follow their active records and announcements, health carries the role, metrics count."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from linker.contract import FailoverRecord, GatewayHealth, Membership
from linker.gateway import agent as agentmod
from linker.gateway import wgctl
from linker.gateway.actives import MoveSiteCidrs
from linker.gateway.agent import Agent
from linker.gateway.agent_ha import HaAgent
from linker.gateway.cloud import NO_RECORD, ActiveRecord, CloudUnavailable
from linker.gateway.ha_membership import HaView
from linker.gateway.settings import AgentSettings
from linker.wg.keys import generate_private_key, public_key_of, to_base64

LINK, SITE, REMOTE = "prod", "us-east-1", "eu-west-1"
A, B, C, D = "i-0aaa", "i-0bbb", "i-0ccc", "i-0ddd"
ADDR = {A: "10.1.0.10", B: "10.1.1.10", C: "10.2.0.10", D: "10.2.1.10"}
KEYS = {i: public_key_of(generate_private_key(os.urandom)) for i in (C, D, REMOTE)}


def membership(own_ha: bool = True, remote_ha: bool = True) -> Membership:
    def site(name: str, cidr: str, gws: list[str], ha: bool) -> dict:
        out = {"site": name, "region": name, "eip": "198.51.100.1", "cidrs": [cidr], "port": 51820,
               "gateway": gws[0]}
        if ha:
            out.update(ha=True, gateways=[[g, f"{name}a", f"198.51.100.{i + 10}", ADDR[g]] for i, g in enumerate(gws)])
        return out
    return Membership.from_json(json.dumps({"schema": 1, "link": LINK, "sites": [
        site(SITE, "10.1.0.0/16", [A, B], own_ha), site(REMOTE, "10.2.0.0/16", [C, D], remote_ha)]}))


class FakeShell:
    def __init__(self) -> None:
        self.role, self.failovers, self.last_failover = "standby", 0, None
        self.views: list[HaView] = []
        self.records: list[dict] = []
        self.live: list[frozenset[str]] = []

    def set_live(self, addresses: frozenset[str]) -> None:
        self.live.append(addresses)

    def set_view(self, view: HaView) -> None:
        self.views.append(view)

    def recorded(self, records: dict) -> None:
        self.records.append(records)


class FakeLoop:
    def __init__(self, view: HaView) -> None:
        self.view, self.shell, self.started, self.stopped = view, FakeShell(), False, False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


class FakeCloud:
    def __init__(self) -> None:
        self.records: dict[str, ActiveRecord] = {}
        self.down = False
        self.doc = membership()
        self.published: list[GatewayHealth] = []

    def active_record(self, site: str | None = None, region: str | None = None) -> ActiveRecord:
        if self.down:
            raise CloudUnavailable("away")
        assert region == site
        return self.records.get(site or SITE, NO_RECORD)

    def publish_public_key(self, key: bytes, instance: str | None = None) -> None:
        pass

    def membership(self) -> Membership:
        return self.doc

    def peer_public_keys(self, membership: Membership, known: dict[str, bytes]) -> dict[str, bytes]:
        return {REMOTE: KEYS[REMOTE]}

    def peer_gateway_keys(self, membership: Membership, known: dict[str, bytes]) -> dict[str, bytes]:
        return {C: KEYS[C], D: KEYS[D]}

    def publish_health(self, health: GatewayHealth) -> None:
        self.published.append(health)


def settings(tmp_path: Path) -> AgentSettings:
    return AgentSettings(LINK, SITE, SITE, state_dir=str(tmp_path / "s"), run_dir=str(tmp_path / "r"))


def ha_agent(tmp_path: Path) -> tuple[HaAgent, list[FakeLoop], list[int], FakeCloud]:
    loops: list[FakeLoop] = []
    applied: list[int] = []
    cloud = FakeCloud()

    def factory(view: HaView) -> FakeLoop:
        loops.append(FakeLoop(view))
        return loops[-1]

    ha = HaAgent(settings(tmp_path), cloud, lambda: applied.append(1), factory)  # type: ignore[arg-type]
    return ha, loops, applied, cloud


def test_a_site_with_one_gateway_runs_no_failover(tmp_path: Path) -> None:
    ha, loops, _, _ = ha_agent(tmp_path)
    ha.update(membership(own_ha=False), A)
    ha.update(membership(), "i-0fff")  # not one of the site's gateways
    ha.update(membership(), "")  # an agent that does not know its instance
    assert loops == [] and ha.prometheus_text() == ""
    health = GatewayHealth(LINK, SITE, 1.0, ())
    assert ha.decorate(health) is health


def test_one_of_the_two_gateways_starts_updates_and_stops_its_loop(tmp_path: Path) -> None:
    ha, loops, _, _ = ha_agent(tmp_path)
    ha.update(membership(), B)
    (loop,) = loops
    assert loop.started and loop.view.sibling == A and loop.view.witnesses == {C: ADDR[C], D: ADDR[D]}
    ha.update(membership(), B)
    assert loop.shell.views == []  # unchanged: nothing handed over
    ha.update(membership(remote_ha=False), B)
    assert [v.witnesses for v in loop.shell.views] == [{}]
    ha.update(membership(own_ha=False), B)
    assert loop.stopped and ha.loop is None


def test_the_gateways_with_a_live_session_are_handed_to_the_shell(tmp_path: Path) -> None:
    ha, loops, _, _ = ha_agent(tmp_path)
    ha.sessions(wgctl.DeviceState(), 1000.0)  # no loop yet: nothing to tell
    ha.update(membership(), B)
    state = wgctl.DeviceState(peers={
        KEYS[C]: wgctl.PeerState(KEYS[C], allowed_ips=["10.2.0.0/16", f"{ADDR[C]}/32"], last_handshake=990.0),
        KEYS[D]: wgctl.PeerState(KEYS[D], allowed_ips=[f"{ADDR[D]}/32"], last_handshake=1000.0 - 181),  # expired
        KEYS[REMOTE]: wgctl.PeerState(KEYS[REMOTE], allowed_ips=["10.9.9.9/32"])})  # never handshaken
    ha.sessions(state, 1000.0)
    assert loops[0].shell.live == [frozenset({ADDR[C]})]


def test_the_role_and_last_failover_in_health_and_metrics(tmp_path: Path) -> None:
    ha, loops, _, _ = ha_agent(tmp_path)
    ha.update(membership(), B)
    shell = loops[0].shell
    shell.role, shell.failovers = "active", 2
    shell.last_failover = FailoverRecord(1.7e9, "the active i-0aaa is unreachable", A, 4.5)
    health = ha.decorate(GatewayHealth(LINK, SITE, 1.0, (), B))
    assert health.role == "active" and health.last_failover == shell.last_failover
    text = ha.prometheus_text()
    assert f'linker_failovers_total{{link="{LINK}",site="{SITE}",instance="{B}"}} 2' in text
    assert f'linker_gateway_active{{link="{LINK}",site="{SITE}",instance="{B}"}} 1' in text


def test_the_slow_path_without_a_loop_applies_remote_records_by_epoch(tmp_path: Path) -> None:
    ha, _, applied, cloud = ha_agent(tmp_path)
    doc = membership(own_ha=False)
    ha.update(doc, A)
    cloud.records[REMOTE] = ActiveRecord(D, 3)
    ha.poll(doc)
    assert ha.actives == {REMOTE: D} and applied == [1]
    ha.poll(doc)
    cloud.records[REMOTE] = ActiveRecord(C, 2)  # stale
    ha.poll(doc)
    assert ha.actives == {REMOTE: D} and applied == [1]
    cloud.down = True
    ha.poll(doc)  # a region away: skipped, nothing changes
    assert ha.actives == {REMOTE: D}


def test_the_slow_path_with_a_loop_goes_through_the_shell_and_moves_come_back(tmp_path: Path) -> None:
    ha, loops, applied, cloud = ha_agent(tmp_path)
    ha.update(membership(), A)
    cloud.records[REMOTE] = ActiveRecord(D, 3)
    ha.poll(membership())
    assert loops[0].shell.records == [{REMOTE: ActiveRecord(D, 3)}] and applied == []
    ha._notify(MoveSiteCidrs(REMOTE, D, 3))  # as the shell does, from the failover thread
    assert ha.actives == {REMOTE: D} and applied == [1]


@pytest.fixture
def agent(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    cloud = FakeCloud()
    a = Agent(AgentSettings(LINK, SITE, SITE, state_dir=str(tmp_path / "s"), run_dir=str(tmp_path / "r"),
                            instance_id="i-0fff"), cloud=cloud)  # type: ignore[arg-type]
    a.private_key, a.instance_id = generate_private_key(os.urandom), "i-0fff"
    (tmp_path / "s").mkdir()
    requests: list[str] = []
    monkeypatch.setattr(agentmod.wgctl, "get", lambda _p: wgctl.DeviceState())
    monkeypatch.setattr(agentmod.wgctl, "set_", lambda _p, r: requests.append(r))
    return a, cloud, requests


def test_the_agent_peers_with_both_gateways_of_a_remote_site_and_follows_its_record(agent) -> None:  # type: ignore[no-untyped-def]
    a, cloud, requests = agent
    cloud.doc = membership(own_ha=False)
    assert a.poll_cloud()
    assert a.ha.loop is None  # this site has one gateway
    peers = {p.public_key: p.allowed_ips for p in a._desired()}
    assert peers == {KEYS[C]: (f"{ADDR[C]}/32", "10.2.0.0/16"), KEYS[D]: (f"{ADDR[D]}/32",)}
    assert {p.persistent_keepalive for p in a._desired()} == {25}
    cloud.records[REMOTE] = ActiveRecord(D, 7)
    assert a.poll_cloud()
    peers = {p.public_key: p.allowed_ips for p in a._desired()}
    assert peers == {KEYS[C]: (f"{ADDR[C]}/32",), KEYS[D]: (f"{ADDR[D]}/32", "10.2.0.0/16")}
    assert "allowed_ip=10.2.0.0/16" in requests[-1] and KEYS[D].hex() in requests[-1]
    a.report_health(0.0)
    (tunnel,) = cloud.published[-1].tunnels
    assert tunnel.peer_site == REMOTE and tunnel.public_key == to_base64(KEYS[D])  # the tunnel to the active
    a.ha.stop()


def test_one_of_the_two_gateways_runs_failover_and_reports_its_role(agent) -> None:  # type: ignore[no-untyped-def]
    a, cloud, _ = agent
    a.instance_id = B
    loops: list[FakeLoop] = []
    a.ha._loop_factory = lambda view: loops.append(FakeLoop(view)) or loops[-1]
    assert a.poll_cloud()
    assert loops and loops[0].started and loops[0].view.instance == B
    loops[0].shell.role = "active"
    a.report_health(0.0)
    assert cloud.published[-1].role == "active" and cloud.published[-1].instance == B
    a.ha.stop()
    assert loops[0].stopped


def test_the_primary_interface_from_the_settings_the_environment_or_none(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from linker.gateway import identity

    s = settings(tmp_path)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv(identity.ENI_ENV, raising=False)
    assert identity.interface_id(s) == ""
    monkeypatch.setenv(identity.ENI_ENV, "eni-0env")
    assert identity.interface_id(s) == "eni-0env"
    assert identity.interface_id(replace(s, eni_id="eni-0set")) == "eni-0set"


def test_each_takeover_is_put_to_cloudwatch_once(tmp_path: Path) -> None:
    ha, loops, _, cloud = ha_agent(tmp_path)
    put: list[tuple[str, int]] = []
    cloud.put_failover_metric = lambda instance, count: put.append((instance, count))  # type: ignore[attr-defined]
    ha.publish_failovers()  # no loop: nothing
    ha.update(membership(), B)
    ha.publish_failovers()
    loops[0].shell.failovers = 1
    ha.publish_failovers()
    ha.publish_failovers()
    loops[0].shell.failovers = 3
    ha.publish_failovers()
    assert put == [(B, 1), (B, 2)]


def test_the_remote_actives_are_kept_with_the_last_good_configuration(agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from linker.gateway.agent import LastGood

    a, cloud, _ = agent
    cloud.doc = membership(own_ha=False)
    cloud.records[REMOTE] = ActiveRecord(D, 7)
    assert a.poll_cloud()  # the record is applied after this poll's save
    assert a.poll_cloud()
    again = LastGood(a.settings.last_good_path)
    assert again.actives() == {REMOTE: D} and again.load() is not None
    a.ha.stop()
    plain = LastGood(tmp_path / "plain.json")
    plain.save(membership(), {})
    assert plain.actives() == {} and "actives" not in json.loads(plain.path.read_text())
    plain.path.write_text('{"actives": ["not", "a", "mapping"]}')
    assert plain.actives() == {}
