"""``linker status`` of a link made by ``up --ha`` (docs/HA.md), through the CLI: a row per gateway with its role
(from the site's active record, and the gateway's own report where it disagrees), the site's last failover (when,
why, how long traffic was cut) in the table and in ``--json``; ``linker failover`` on the same link. A link with one
gateway per site shows exactly as before."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from linker import naming
from linker.contract import (
    FailoverRecord,
    GatewayHealth,
    Membership,
    SiteEntry,
    TunnelHealth,
    active_record_value,
    switch_request,
)
from linker.control.aws import Target
from linker.control.operations import Options, up_link
from linker.errors import ExitCode
from linker.spec import LinkSpec
from tests.control.test_cli_server import run
from tests.control.test_ha_apply import gateways, two_zones

E, W = "us-east-1", "eu-west-1"
LINK = "pair"


def report(site: str, peer: str, instance: str, role: str, failover: FailoverRecord | None = None,
           healthy: bool = True) -> str:
    tunnel = TunnelHealth(peer, None, None, time.time() - 12, 12.0, 10, 20, healthy)
    return GatewayHealth(LINK, site, time.time(), (tunnel,), instance, "0.1.0", role, failover).to_document()


def put(aws: Any, region: str, name: str, value: str) -> int:
    return int(aws.client("ssm", region_name=region).put_parameter(Name=name, Value=value, Type="String",
                                                                   Overwrite=True)["Version"])


def test_status_shows_each_gateway_its_role_and_the_last_failover_and_failover_switches_back(
        aws: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    two_zones(aws, E, "10.10.0.0/16")
    two_zones(aws, W, "10.20.0.0/16")
    assert up_link(Target(), LinkSpec(LINK, (E, W), ha=True), lambda _: True, options=Options(poll=0.0, timeout=5.0))
    pairs = {r: [i["InstanceId"] for i in gateways(aws, r)] for r in (E, W)}
    a, b = pairs[E]  # a (the lower id) was active; b took over when a went silent
    took_over = FailoverRecord(time.time() - 180, f"the active {a} is unreachable", a, 4.3)
    put(aws, E, naming.active_parameter(LINK, E), active_record_value(a))
    epoch = put(aws, E, naming.active_parameter(LINK, E), active_record_value(b))
    put(aws, E, naming.gateway_health_parameter(LINK, E, a), report(E, W, a, "active"))  # its last word, stale
    put(aws, E, naming.gateway_health_parameter(LINK, E, b), report(E, W, b, "active", took_over))
    for instance in pairs[W]:  # west: lower id active since the start, no failover
        put(aws, W, naming.gateway_health_parameter(LINK, W, instance),
            report(W, E, instance, "active" if instance == min(pairs[W]) else "standby"))
    put(aws, W, naming.active_parameter(LINK, W), active_record_value(min(pairs[W])))

    code, out, err = run(capsys, "status", "--name", LINK, "--region", E, "--region", W)
    assert code == 0, out + err
    header = next(line for line in out.splitlines() if "instance" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")][:4] == ["site", "instance", "role", "state"], out
    row = {i: next(line for line in out.splitlines() if i in line and "│" in line) for i in (*pairs[E], *pairs[W])}
    assert "standby (reports active)" in row[a] and "│ active " in row[b], out
    assert "│ active " in row[min(pairs[W])] and "│ standby " in row[max(pairs[W])], out
    assert f"{E}: active {b}; last failover 3 min ago: {b} took over from {a} (the active {a} is unreachable), " \
           "traffic cut 4.3 s" in out
    assert f"{W}: active {min(pairs[W])}; no failover reported" in out

    code, out, err = run(capsys, "status", "--name", LINK, "--region", E, "--region", W, "--json")
    assert code == 0, out + err
    doc = json.loads(out)
    roles = {g["instance"]: (g["site"], g["role"], g["health"]["role"]) for g in doc["gateways"]}
    assert roles[a] == (E, "standby", "active") and roles[b] == (E, "active", "active")
    assert len(doc["gateways"]) == 4 and all(g["state"] == "running" and g["eip"] for g in doc["gateways"])
    sites = {s["site"]: s for s in doc["sites"]}
    assert sites[E]["active"] == b and sites[W] == {"site": W, "active": min(pairs[W]), "last_failover": None}
    assert sites[E]["last_failover"] == {**took_over.to_dict(), "instance": b}

    # a standby that stopped reporting healthy tunnels makes the link degraded, named with its instance
    put(aws, W, naming.gateway_health_parameter(LINK, W, max(pairs[W])),
        report(W, E, max(pairs[W]), "standby", healthy=False))
    code, out, err = run(capsys, "status", "--name", LINK, "--region", E, "--region", W, "--json")
    assert code == ExitCode.DEGRADED and f"{W} ({max(pairs[W])})" in json.loads(out)["message"]

    # and the planned switch back, on the same link: the switch record names a at the current epoch
    code, out, err = run(capsys, "failover", E, "--name", LINK, "--yes", "--no-wait", "--json")
    assert code == 0, err
    assert (json.loads(out)["from"], json.loads(out)["to"]) == (b, a)
    value = aws.client("ssm", region_name=E).get_parameter(Name=naming.switch_parameter(LINK, E))
    assert switch_request(value["Parameter"]["Value"]) == (a, epoch)


def test_a_link_with_one_gateway_per_site_shows_as_before(aws: Any, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    sites = (SiteEntry(E, E, "203.0.113.1", ("10.10.0.0/16",), 51820), SiteEntry(W, W, "203.0.113.2",
                                                                                  ("10.20.0.0/16",), 51820))
    for site, peer in ((E, W), (W, E)):
        put(aws, site, naming.membership_parameter(LINK), Membership(LINK, sites).to_json())
        health = GatewayHealth(LINK, site, time.time(), (TunnelHealth(peer, None, None, None, 12.0, 1, 2, True),))
        put(aws, site, naming.health_parameter(LINK, site), health.to_document())
    code, out, err = run(capsys, "status", "--name", LINK, "--region", E, "--region", W)
    assert code == 0, out + err
    header = next(line for line in out.splitlines() if "instance" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "site", "instance", "state", "EIP", "peer", "last handshake", "rx", "tx", "tunnel"]
    assert "failover" not in out and "active" not in out
    code, out, err = run(capsys, "status", "--name", LINK, "--region", E, "--region", W, "--json")
    doc = json.loads(out)
    assert code == 0 and set(doc) == {"link", "healthy", "gateways"}
    assert all(set(g) == {"site", "region", "instance", "state", "eip", "healthy", "health", "bootstrap"}
               for g in doc["gateways"])
