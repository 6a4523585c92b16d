"""Fixtures of the controller's tests: dummy credentials, moto in-process, and a recorder of every AWS action
the controller calls (checked against ``linker iam-policy`` by test_zz_iam_policy.py)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from linker.control import aws as aws_mod

MOTO_CONFIG = {"iam": {"load_aws_managed_policies": True}}  # the gateway role attaches AmazonSSMManagedInstanceCore
CALLED: set[str] = set()  # "service:Action" of every call the controller made in this test session
_original_get = aws_mod.Clients.get


def _record(model, **_):  # type: ignore[no-untyped-def]
    CALLED.add(f"{model.service_model.signing_name}:{model.name}")


def _recording_get(self, service, region):  # type: ignore[no-untyped-def]
    client = _original_get(self, service, region)
    client.meta.events.register("before-call.*.*", _record, unique_id="linker-test-recorder")
    return client


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials only, never a real profile; record every action the controller calls."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "LINKER_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254 for credentials
    monkeypatch.setattr(aws_mod.Clients, "get", _recording_get)


@pytest.fixture
def aws():  # type: ignore[no-untyped-def]
    """moto in-process for the duration of a test; yields a boto3 session for the test's own calls."""
    with mock_aws(config=MOTO_CONFIG):
        yield boto3.session.Session()


@pytest.fixture(scope="session")
def iam_server():  # type: ignore[no-untyped-def]
    """The URL of a moto server, in its own process, that enforces IAM as AWS does (tests/control/iam_server.py)."""
    from tests.control.iam_server import running_server
    with running_server() as url:
        yield url
