"""What the CLI prints when stdout is not a terminal (CI logs, pipes): full values, never cut to 80 columns."""

from __future__ import annotations

import boto3
import pytest

from linker.cli.link import _status_table
from linker.cli.output import console
from linker.control.operations import GatewayStatus
from linker.sandbox.lifecycle import isolated_session


def test_tables_keep_full_values_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    gateways = [GatewayStatus(f"region-{n}-with-a-long-name", f"region-{n}", f"i-0123456789abcdef{n}", "running",
                              f"203.0.113.{100 + n}", None) for n in range(3)]
    console().print(_status_table("a-link-with-a-rather-long-name", gateways))
    out = capsys.readouterr().out
    for n in range(3):
        assert f"i-0123456789abcdef{n}" in out and f"203.0.113.{100 + n}" in out
        assert f"region-{n}-with-a-long-name" in out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) > 80


def test_the_sandbox_session_reads_nothing_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_PROFILE naming a profile that does not exist, or real-looking keys in the environment, change nothing."""
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKINGKEY00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-sandbox")
    with pytest.raises(Exception, match="no-such-profile"):
        boto3.session.Session().client("ec2", region_name="us-east-1")  # the ordinary chain would fail here
    session = isolated_session("sandbox-key")
    creds = session.get_credentials()
    assert (creds.access_key, creds.secret_key) == ("sandbox-key", "sandbox")
    client = session.client("ec2", region_name="eu-west-1", endpoint_url="http://127.0.0.1:1")
    assert client.meta.region_name == "eu-west-1"
