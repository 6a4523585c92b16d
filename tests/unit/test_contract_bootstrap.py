"""The bootstrap record: what templates/linker-bootstrap.sh.tftpl writes and `linker status` reads."""

from __future__ import annotations

import json

import pytest

from linker.contract import BootstrapReport
from linker.control.operations import bootstrap_summary
from linker.errors import ContractError, ContractVersionError

# as the script writes it (its own JSON, not this module's): keys in its order, integers for times
WRITTEN = ('{"schema":1,"link":"prod","site":"eu-west-1","instance":"i-0abc","state":"retrying","step":"download",'
           '"exit_code":1,"attempt":3,"at":1700000000,"retry_in":20,"output":"fetching\\ndownload failed: 403"}')


def test_the_scripts_document_reads_and_round_trips() -> None:
    r = BootstrapReport.from_json(WRITTEN)
    assert (r.state, r.step, r.exit_code, r.attempt, r.at, r.retry_in) == ("retrying", "download", 1, 3,
                                                                            1700000000.0, 20.0)
    assert r.reason() == "download failed: 403" and not r.succeeded
    assert BootstrapReport.from_json(r.to_json()) == r


def test_summaries_say_step_attempt_age_and_reason() -> None:
    r = BootstrapReport.from_json(WRITTEN)
    assert bootstrap_summary(r, r.at + 180) == (
        "bootstrap failed at step download (attempt 3, 3 min ago): download failed: 403; retrying")
    assert bootstrap_summary(r, r.at + 42).startswith("bootstrap failed at step download (attempt 3, 42 s ago)")
    gave_up = BootstrapReport.from_dict({**json.loads(WRITTEN), "state": "failed", "retry_in": None, "output": ""})
    assert bootstrap_summary(gave_up, gave_up.at + 7200).startswith(
        "bootstrap failed at step download (attempt 3, 2 h ago): exit code 1; it gave up")
    ok = BootstrapReport.from_dict({**json.loads(WRITTEN), "state": "succeeded", "step": None, "exit_code": 0})
    assert ok.succeeded and bootstrap_summary(ok, ok.at + 5) == "bootstrap succeeded (attempt 3, 5 s ago)"


@pytest.mark.parametrize(("change", "problem"), [
    ({"state": "sleeping"}, "state"), ({"attempt": -1}, "attempt"), ({"at": "now"}, "at"),
    ({"instance": ""}, "instance"), ({"output": 7}, "output"), ({"schema": None}, "schema"),
])
def test_bad_documents_are_refused_naming_the_field(change: dict, problem: str) -> None:
    with pytest.raises(ContractError, match=problem):
        BootstrapReport.from_dict({**json.loads(WRITTEN), **change})
    with pytest.raises(ContractError, match="not JSON"):
        BootstrapReport.from_json("{")


def test_a_newer_schema_is_refused_with_the_fix() -> None:
    with pytest.raises(ContractVersionError, match="schema 2"):
        BootstrapReport.from_dict({**json.loads(WRITTEN), "schema": 2})
