"""`linker status` shows what a gateway's bootstrap recorded while the gateway has not reported health."""

from __future__ import annotations

import json
import time

import pytest

from linker import naming
from linker.errors import ExitCode
from tests.control.test_cli_server import E, W, endpoint, nothing_made, run, server, session, sites

__all__ = ["endpoint", "server"]  # the fixtures, shared with test_cli_server


def record(endpoint: str, site: str, instance: str, **fields: object) -> None:
    """What the bootstrap script of ``site``'s gateway writes with its instance role."""
    doc = {"schema": 1, "link": "default", "site": site, "instance": instance, "state": "retrying",
           "step": "download", "exit_code": 1, "attempt": 3, "at": int(time.time()) - 180, "retry_in": 40,
           "output": "download failed: s3://b/k: An error occurred (403) when calling the HeadObject operation: "
                     "Forbidden", **fields}
    session().client("ssm", region_name=site, endpoint_url=endpoint).put_parameter(
        Name=naming.bootstrap_parameter("default", site), Value=json.dumps(doc), Type="String", Overwrite=True)


def test_status_shows_the_bootstrap_failure_of_a_gateway_that_has_not_reported(
        endpoint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    sites(endpoint)
    code, out, err = run(capsys, "up", E, W, "--yes", "--no-wait", "--json")
    assert code == 0, err
    instances = {g["site"]: g["instance"] for g in json.loads(out)["gateways"]}
    assert all(g["bootstrap"] is None for g in json.loads(out)["gateways"])  # nothing recorded yet

    record(endpoint, W, instances[W])
    record(endpoint, E, "i-0replacedlongago", state="failed")  # an instance since replaced: not this gateway's
    code, out, _ = run(capsys, "status", "--json")
    assert code == ExitCode.DEGRADED
    gateways = {g["site"]: g for g in json.loads(out)["gateways"]}
    assert gateways[E]["bootstrap"] is None
    boot = gateways[W]["bootstrap"]
    assert (boot["state"], boot["step"], boot["attempt"], boot["instance"]) == ("retrying", "download", 3,
                                                                                 instances[W])
    assert boot["summary"] == ("bootstrap failed at step download (attempt 3, 3 min ago): download failed: s3://b/k: "
                               "An error occurred (403) when calling the HeadObject operation: Forbidden; retrying")

    code, out, _ = run(capsys, "status")
    assert code == ExitCode.DEGRADED
    assert f"{W}: bootstrap failed at step download (attempt 3, 3 min ago): download failed" in out
    assert f"{E}: bootstrap" not in out

    record(endpoint, W, instances[W], state="succeeded", step=None, exit_code=0, retry_in=None, output="")
    code, out, _ = run(capsys, "status")
    assert f"{W}: bootstrap succeeded (attempt 3, 3 min ago)" in out  # installed; its agent has not reported yet

    code, out, err = run(capsys, "down", "--yes", "--json")
    assert code == 0, err
    assert nothing_made(endpoint)
    ssm = session().client("ssm", region_name=W, endpoint_url=endpoint)
    assert not ssm.get_parameters_by_path(Path="/linker/default", Recursive=True)["Parameters"]
