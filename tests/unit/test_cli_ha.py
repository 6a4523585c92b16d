"""``plan/up --ha`` (docs/HA.md): accepted, in the help, and passed to the
controller as the spec's ``ha``; ``plan`` then shows the second gateways' cost."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from linker.cli import link as cli_link
from linker.control import operations


@pytest.mark.parametrize("command", [cli_link.plan, cli_link.up])
def test_ha_is_in_the_help(command: Any) -> None:
    out = CliRunner().invoke(command, ["--help"])
    assert out.exit_code == 0 and "--ha " in out.output and "availability zones" in out.output


def test_plan_ha_asks_for_two_gateways_and_shows_their_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(operations, "plan_link", lambda _target, spec, upgrade=False: seen.append(spec) or [])
    out = CliRunner().invoke(cli_link.plan, ["us-east-1", "eu-west-1", "--ha", "--json",
                                             "--endpoint-url", "http://127.0.0.1:1"])
    assert out.exit_code == 0, out.output
    assert [s.ha for s in seen] == [True]
    cost = json.loads(out.output)["cost"]
    assert cost["gateways"] == 4 and cost["gateways_per_site"] == 2 and cost["second_gateways_monthly"] > 0
    out = CliRunner().invoke(cli_link.plan, ["us-east-1", "eu-west-1", "--json", "--endpoint-url",
                                             "http://127.0.0.1:1"])
    assert seen[-1].ha is False and json.loads(out.output)["cost"]["gateways"] == 2
