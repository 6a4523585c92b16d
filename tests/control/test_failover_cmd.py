"""``linker failover SITE [--to INSTANCE]`` against moto, through the CLI as a user runs it: the switch record names
the target and the current epoch, the command waits for the site's gateway (a fake agent here) to record the
switch, and says clearly what to check when it does not happen; every refusal is a clear error, with nothing
written."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from linker import naming
from linker.contract import (
    GatewayEntry,
    GatewayHealth,
    Membership,
    SiteEntry,
    TunnelHealth,
    active_record_value,
    switch_request,
)
from linker.control.iam_policy import controller_policy
from linker.errors import ExitCode
from tests.control.iam_server import enforce
from tests.control.test_cli_server import run

E, W = "us-east-1", "eu-west-1"
LINK = "pair"
A, B = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"  # the HA site's two gateways


def _membership(ha_west: bool = False) -> Membership:
    east = SiteEntry(E, E, "203.0.113.1", ("10.10.0.0/16",), 51820, A, True,
                     (GatewayEntry(A, f"{E}a", "203.0.113.1", "10.10.1.10"),
                      GatewayEntry(B, f"{E}b", "203.0.113.2", "10.10.3.10")))
    west = SiteEntry(W, W, "203.0.113.3", ("10.20.0.0/16",), 51820, "i-0ccccccccccccccc3")
    return Membership(LINK, (east, west))


def put(aws: Any, region: str, name: str, value: str) -> int:
    return int(aws.client("ssm", region_name=region).put_parameter(Name=name, Value=value, Type="String",
                                                                   Overwrite=True)["Version"])


def get(aws: Any, region: str, name: str) -> str | None:
    try:
        return str(aws.client("ssm", region_name=region).get_parameter(Name=name)["Parameter"]["Value"])
    except aws.client("ssm", region_name=region).exceptions.ParameterNotFound:
        return None


@pytest.fixture
def site(aws: Any) -> Any:  # type: ignore[no-untyped-def]
    """A link whose east site has two gateways, A active at epoch 2 (the record written twice: its version)."""
    for region in (E, W):
        put(aws, region, naming.membership_parameter(LINK), _membership().to_json())
    put(aws, E, naming.active_parameter(LINK, E), active_record_value(B))
    assert put(aws, E, naming.active_parameter(LINK, E), active_record_value(A)) == 2
    return aws


class FakeAgent:
    """Plays the named standby's agent: once the switch record asks for it at the current epoch, it records itself
    active (the version SSM gives that write is the new epoch). ``who`` overrides the instance it records."""

    def __init__(self, aws: Any, who: str | None = None) -> None:
        self.aws, self.who, self.seen = aws, who, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = get(self.aws, E, naming.switch_parameter(LINK, E))
            if value is not None:
                self.seen = switch_request(value)
                time.sleep(0.3)  # the routes move first
                put(self.aws, E, naming.active_parameter(LINK, E), active_record_value(self.who or self.seen[0]))
                return
            time.sleep(0.05)

    def __enter__(self) -> FakeAgent:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def agent(site: Any) -> Iterator[FakeAgent]:
    with FakeAgent(site) as fake:
        yield fake


def test_no_wait_writes_the_switch_record_with_the_current_epoch(site: Any,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "failover", E, "--name", LINK, "--yes", "--no-wait", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc == {"link": LINK, "site": E, "from": A, "to": B, "epoch": 2, "status": "requested",
                   "switched": False, "active": A, "active_epoch": 2, "seconds": None}
    assert switch_request(get(site, E, naming.switch_parameter(LINK, E)) or "") == (B, 2)


def test_waits_until_the_standby_records_the_switch(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "failover", E, "--name", LINK, "--yes", "--timeout", "20")
    assert code == 0, err
    assert agent.seen == (B, 2)
    lines = out.strip().splitlines()
    assert len(lines) == 1 and f"{B} is the active gateway (was {A}), epoch 2 -> 3" in lines[0], out


def test_json_says_when_the_switch_happened(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "failover", E, "--name", LINK, "--to", B, "--yes", "--json", "--timeout", "20")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "switched" and doc["switched"] is True and (doc["from"], doc["to"]) == (A, B)
    assert (doc["active"], doc["epoch"], doc["active_epoch"]) == (B, 2, 3) and 0 < doc["seconds"] < 20


def test_times_out_with_what_to_check_and_a_non_zero_exit(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code, out, err = run(capsys, "failover", E, "--name", LINK, "--yes", "--timeout", "1")
    assert time.monotonic() - started < 10
    assert code == ExitCode.DEGRADED
    assert f"{B} did not take over within 1 s" in err and f"still names {A} (epoch 2)" in err
    assert f"linker status --name {LINK}" in err and "tunnels" in err and "The request stays" in err
    assert f"{B} is not the active gateway; {A} is" in out

    code, out, err = run(capsys, "failover", E, "--name", LINK, "--yes", "--timeout", "0.5", "--json")
    doc = json.loads(out)  # one document: the outcome and the error together
    assert code == ExitCode.DEGRADED and doc["status"] == "timeout" and doc["error"] == "degraded"
    assert doc["exit_code"] == ExitCode.DEGRADED and "did not take over" in doc["message"] and doc["fix"]


def test_a_switch_to_another_instance_meanwhile_voids_the_request(site: Any,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with FakeAgent(site, who=A):  # the active records itself again (a reconcile): a higher epoch, still A
        code, out, _ = run(capsys, "failover", E, "--name", LINK, "--yes", "--json", "--timeout", "20")
    doc = json.loads(out)
    assert code == ExitCode.DEGRADED and doc["status"] == "superseded" and "is void" in doc["message"]


def _refused(aws: Any, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run(capsys, "failover", *args, "--json")
    assert code == ExitCode.USER, out + err
    assert "Traceback" not in err
    assert get(aws, E, naming.switch_parameter(LINK, E)) is None  # nothing was asked
    doc = json.loads(out)
    assert doc["error"] == "user_error" and doc["fix"]
    return doc


def test_refusals_are_clear_errors_and_write_nothing(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _refused(site, capsys, E, "--name", LINK, "--to", "i-0ddddddddddddddd4", "--yes")
    assert "i-0ddddddddddddddd4 is not a gateway of site us-east-1" in doc["message"]
    assert A in doc["fix"] and B in doc["fix"] and "--to" in doc["fix"]

    doc = _refused(site, capsys, E, "--name", LINK, "--to", A, "--yes")
    assert f"{A} is already the active gateway of site {E} (epoch 2)" in doc["message"] and B in doc["fix"]

    doc = _refused(site, capsys, W, "--name", LINK, "--yes")
    assert "has one gateway" in doc["message"] and "--ha" in doc["fix"]

    doc = _refused(site, capsys, "ap-south-1", "--name", LINK, "--yes")
    assert "has no site 'ap-south-1' (its sites: us-east-1, eu-west-1)" in doc["message"]
    doc = _refused(site, capsys, "nowhere", "--name", LINK, "--yes")
    assert "has no site 'nowhere'" in doc["message"] and "region" in doc["fix"]

    doc = _refused(site, capsys, E, "--name", "other", "--yes")
    assert doc["message"] == "there is no link named 'other'"

    doc = _refused(site, capsys, E, "--name", LINK)  # --json and no --yes: nobody can be asked
    assert "not confirmed" in doc["message"] and "--yes" in doc["fix"]


def test_a_site_whose_gateways_have_not_recorded_an_active_one_is_refused(
        aws: Any, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    for region in (E, W):
        put(aws, region, naming.membership_parameter(LINK), _membership().to_json())
    doc = _refused(aws, capsys, E, "--name", LINK, "--yes")
    assert "no active gateway yet" in doc["message"] and "linker status" in doc["fix"]


def test_terminal_errors_name_the_fix_without_a_traceback(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "failover", E, "--name", LINK, "--to", "i-nope", "--yes")
    assert code == ExitCode.USER and out == ""
    assert err.startswith("error: i-nope is not a gateway") and "  fix: name one of its gateways" in err
    assert "Traceback" not in err


def test_failover_works_holding_exactly_the_printed_policy(iam_server: str, aws_env: None,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Against the moto server that enforces IAM (tests/control/iam_server.py): the controller's policy allows
    every call of ``linker failover`` (its refusals' discovery of the link's regions included)."""

    def prepare(admin: Any) -> None:
        for region in (E, W):
            admin.client("ssm", region_name=region, endpoint_url=iam_server).put_parameter(
                Name=naming.membership_parameter(LINK), Value=_membership().to_json(), Type="String")
        admin.client("ssm", region_name=E, endpoint_url=iam_server).put_parameter(
            Name=naming.active_parameter(LINK, E), Value=active_record_value(A), Type="String")

    made = enforce(iam_server, controller_policy(), prepare)
    monkeypatch.setenv("LINKER_ENDPOINT_URL", iam_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", made.keys[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", made.keys[1])
    code, out, err = run(capsys, "failover", E, "--name", LINK, "--yes", "--json", "--timeout", "0.5")
    assert code == ExitCode.DEGRADED and json.loads(out)["status"] == "timeout", out + err  # no agent: no switch
    value = made.admin.client("ssm", region_name=E, endpoint_url=iam_server).get_parameter(
        Name=naming.switch_parameter(LINK, E))["Parameter"]["Value"]
    assert switch_request(value) == (B, 1)
    code, out, err = run(capsys, "failover", "ap-south-1", "--name", LINK, "--yes", "--json")
    assert code == ExitCode.USER and "its sites: us-east-1, eu-west-1" in json.loads(out)["message"], out + err


def test_a_target_whose_own_report_shows_tunnels_down_is_asked_with_a_warning(
        site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    health = GatewayHealth(LINK, E, time.time(), (TunnelHealth(W, None, None, None, None, 0, 0, False),), B,
                           "0.1.0", "standby")
    put(site, E, naming.gateway_health_parameter(LINK, E, B), health.to_document())
    code, out, err = run(capsys, "failover", E, "--name", LINK, "--yes", "--no-wait")
    assert code == 0 and f"asked {B} to take over from {A} (epoch 2)" in out
    assert f"{B} last reported tunnels down ({W}): it takes over only once they work" in err
    assert switch_request(get(site, E, naming.switch_parameter(LINK, E)) or "") == (B, 2)
