"""When the agent publishes health: on its interval, and soon after a tunnel comes up or goes down."""

from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest

from linker.contract import FailoverRecord, Membership
from linker.gateway import agent as agentmod
from linker.gateway import wgctl
from linker.gateway.agent import MIN_PUBLISH_GAP, Agent
from linker.gateway.settings import AgentSettings
from linker.wg.keys import generate_private_key, public_key_of

PEER = public_key_of(generate_private_key(os.urandom))


class FakeCloud:
    def __init__(self) -> None:
        self.published: list[tuple[bool, ...]] = []

    def publish_health(self, health) -> None:  # type: ignore[no-untyped-def]
        self.published.append(tuple(t.healthy for t in health.tunnels))


@pytest.fixture
def agent(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    settings = AgentSettings(link="demo", site="us-east-1", region="us-east-1", state_dir=str(tmp_path / "s"),
                             run_dir=str(tmp_path / "r"), health_interval=30.0)
    a = Agent(settings, cloud=FakeCloud())  # type: ignore[arg-type]
    sites = [{"site": r, "region": r, "eip": ip, "cidrs": [c], "port": 51820}
             for r, ip, c in (("eu-west-1", "198.51.100.2", "10.20.0.0/16"),
                              ("us-east-1", "198.51.100.1", "10.10.0.0/16"))]
    a.membership = Membership.from_json(json.dumps({"schema": 1, "link": "demo", "sites": sites}))
    a.keys = {"eu-west-1": PEER}
    handshake: list[float | None] = [None]

    def get(_path):  # type: ignore[no-untyped-def]
        peer = wgctl.PeerState(PEER, last_handshake=handshake[0])
        return wgctl.DeviceState(peers={PEER: peer})

    monkeypatch.setattr(agentmod.wgctl, "get", get)
    return a, handshake


def test_published_on_the_interval_and_soon_after_a_change(agent) -> None:  # type: ignore[no-untyped-def]
    a, handshake = agent
    cloud = a.cloud
    a.report_health(0.0)
    assert cloud.published == [(False,)]  # the first report: at once
    a.report_health(1.0)
    assert len(cloud.published) == 1  # nothing changed: not before the interval
    handshake[0] = time.time()
    a.report_health(2.0)
    assert len(cloud.published) == 1  # changed, but too soon after the last report (SSM's rate, flapping)
    a.report_health(MIN_PUBLISH_GAP)
    assert cloud.published[-1] == (True,)  # the tunnel came up: reported well before the 30 s interval
    for t in range(6, 35):
        a.report_health(float(t))
    assert len(cloud.published) == 2
    a.report_health(MIN_PUBLISH_GAP + 30.0)
    assert len(cloud.published) == 3  # and again on the interval


def test_a_takeover_and_then_its_failover_record_are_each_published_soon(agent, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The role changes when the routes start to move, the record of the failover comes once it is written: each
    is a change that `linker status` should show before the 30 s interval."""
    a, _ = agent
    healths: list = []
    monkeypatch.setattr(a.cloud, "publish_health", healths.append)
    ha: dict = {"role": "standby", "last_failover": None}
    monkeypatch.setattr(a.ha, "decorate", lambda health: dataclasses.replace(health, **ha))
    a.report_health(0.0)
    ha["role"] = "active"
    a.report_health(MIN_PUBLISH_GAP)
    assert [h.role for h in healths] == ["standby", "active"] and healths[-1].last_failover is None
    ha["last_failover"] = FailoverRecord(1.0, "the active's daemon stopped answering", "i-0old", 4.5)
    a.report_health(MIN_PUBLISH_GAP + 1.0)
    assert len(healths) == 2  # not sooner than MIN_PUBLISH_GAP after the last report
    a.report_health(2 * MIN_PUBLISH_GAP)
    assert len(healths) == 3 and healths[-1].last_failover.previous == "i-0old"
