"""The commands end to end through a real moto server over HTTP (127.0.0.1), as a user runs them."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from linker import naming
from linker.cli import main
from linker.control.aws import Clients, Target
from linker.control.lock import acquire
from linker.errors import ExitCode
from tests.control.cloud import inventory, make_vpc

E, W = "us-east-1", "eu-west-1"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


@pytest.fixture
def endpoint(server: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A freshly reset moto server; LINKER_ENDPOINT_URL points the CLI at it."""
    request = urllib.request.Request(f"{server}/moto-api/reset", method="POST")  # noqa: S310 (loopback http)
    urllib.request.urlopen(request, timeout=10).read()  # noqa: S310
    monkeypatch.setenv("LINKER_ENDPOINT_URL", server)
    return server


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``linker ARGS``; returns (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def session() -> Any:
    return boto3.session.Session()


def nothing_made(endpoint: str, link: str = "default") -> bool:
    inv = inventory(session(), link, [E, W], endpoint)
    return not inv["roles"] and not inv["buckets"] and all(not any(inv[r].values()) for r in (E, W))


def sites(endpoint: str) -> None:
    make_vpc(session(), E, "10.10.0.0/16", endpoint_url=endpoint, tables=1)
    make_vpc(session(), W, "10.20.0.0/16", endpoint_url=endpoint, tables=1)


def test_plan_up_status_down_over_http(endpoint: str, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables to the terminal's width
    sites(endpoint)
    code, out, _ = run(capsys, "plan", E, W, "--json")
    doc = json.loads(out)
    assert code == 0 and len(doc["changes"]) > 20 and doc["cost"]["monthly_total"] > 0
    assert nothing_made(endpoint)

    code, out, err = run(capsys, "up", E, W, "--yes", "--no-wait", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["applied"] and {g["site"] for g in doc["gateways"]} == {E, W}

    code, out, _ = run(capsys, "plan", E, W, "--json")
    assert code == 0 and json.loads(out)["changes"] == []
    code, out, _ = run(capsys, "plan", E, W)
    assert "nothing to change" in out and "estimated cost" in out

    code, out, _ = run(capsys, "status", "--json")
    assert code == ExitCode.DEGRADED and json.loads(out)["healthy"] is False  # no gateway has reported yet
    for site, peer in ((E, W), (W, E)):  # what each gateway agent publishes
        health = {"link": "default", "site": site, "reported_at": time.time(), "healthy": True,
                  "tunnels": [{"peer_site": peer, "handshake_age": 12.0, "rx_bytes": 10, "tx_bytes": 20,
                               "healthy": True, "endpoint": None, "public_key": None, "last_handshake": None}]}
        session().client("ssm", region_name=site, endpoint_url=endpoint).put_parameter(
            Name=naming.health_parameter("default", site), Value=json.dumps(health), Type="String")
    code, out, _ = run(capsys, "status")
    assert code == 0 and "12 s ago" in out

    code, out, err = run(capsys, "down", "--yes", "--json")
    assert code == 0, err
    assert json.loads(out)["removed"]
    assert nothing_made(endpoint)


def test_without_yes_a_non_interactive_up_changes_nothing(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    sites(endpoint)
    code, out, _ = run(capsys, "up", E, W, "--no-wait", "--json")
    assert code == ExitCode.USER and "--yes" in json.loads(out)["fix"]
    assert nothing_made(endpoint)


def _foreign_route(endpoint: str) -> None:
    sites(endpoint)
    ec2 = session().client("ec2", region_name=E, endpoint_url=endpoint)
    table = ec2.describe_route_tables(Filters=[{"Name": "association.main", "Values": ["true"]},
                                              {"Name": "route.destination-cidr-block", "Values": ["0.0.0.0/0"]}])
    igw = ec2.describe_internet_gateways()["InternetGateways"][0]["InternetGatewayId"]
    ec2.create_route(RouteTableId=table["RouteTables"][0]["RouteTableId"], DestinationCidrBlock="10.20.0.0/16",
                     GatewayId=igw)


def _no_public_subnet(endpoint: str) -> None:
    make_vpc(session(), E, "10.10.0.0/16", endpoint_url=endpoint, tables=1)
    make_vpc(session(), W, "10.20.0.0/16", endpoint_url=endpoint, tables=1, public=False)


def _held_lock(endpoint: str) -> None:
    sites(endpoint)
    acquire(Clients(Target(endpoint_url=endpoint)), "default", W, "linker up (another run)")


CASES = [
    ("overlap", lambda ep: None, [E, W], ExitCode.USER, "Default VPCs are all 172.31.0.0/16"),
    ("unknown region", sites, [E, "eu-wset-1"], ExitCode.USER, "unknown region 'eu-wset-1'"),
    ("no public subnet", _no_public_subnet, [E, W], ExitCode.USER, "has no public subnet"),
    ("foreign route", _foreign_route, [E, W], ExitCode.USER, "which linker did not create"),
    ("held lock", _held_lock, [E, W], ExitCode.LOCKED, "locked by `linker up (another run)`"),
]


@pytest.mark.parametrize("name, prepare, regions, code, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_nothing_is_made(endpoint: str, capsys: pytest.CaptureFixture[str],
                                                          name: str, prepare: Any, regions: list[str],
                                                          code: ExitCode, needle: str) -> None:
    prepare(endpoint)
    got, out, err = run(capsys, "up", *regions, "--yes", "--no-wait", "--json")
    assert got == code, err
    doc = json.loads(out)
    assert needle in doc["message"] and doc["exit_code"] == code and "Traceback" not in err
    inv = inventory(session(), "default", [E, W], endpoint)
    assert not inv["roles"] and not inv["buckets"] and all(inv[r]["eips"] == inv[r]["instances"] == 0
                                                           for r in (E, W))
    lock = [naming.lock_parameter("default")] if name == "held lock" else []
    assert inv[W]["params"] == lock and inv[E]["params"] == []


def test_no_credentials_is_a_cloud_error_with_a_fix(endpoint: str, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    sites(endpoint)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, out, err = run(capsys, "up", E, W, "--yes", "--no-wait", "--json")
    assert code == ExitCode.CLOUD, err
    doc = json.loads(out)
    assert doc["error"] == "credentials_error" and "AWS_PROFILE" in doc["fix"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert nothing_made(endpoint)


def test_iam_policy_prints_a_policy_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "iam-policy")
    doc = json.loads(out)
    assert code == 0 and doc["Version"] == "2012-10-17"
    assert "ec2:RunInstances" in [a for s in doc["Statement"] for a in s["Action"]]


def test_vpc_option_chooses_among_several_vpcs(endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    sites(endpoint)
    extra = make_vpc(session(), E, "10.99.0.0/16", endpoint_url=endpoint, tables=1)
    code, out, _ = run(capsys, "plan", E, W, "--json")
    assert code == ExitCode.USER and "several VPCs" in json.loads(out)["message"]
    code, out, err = run(capsys, "plan", E, W, "--vpc", f"{E}={extra.vpc}", "--json")
    assert code == 0, err
    groups = [c for c in json.loads(out)["changes"] if c["kind"] == "security-group" and c["region"] == E]
    assert groups[0]["params"]["vpc"] == extra.vpc


def test_an_unknown_profile_is_a_credentials_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", E, W, "--profile", "no-such-profile", "--json")
    assert code == ExitCode.CLOUD and json.loads(out)["error"] == "credentials_error"
