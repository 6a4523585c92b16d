"""A moto server that enforces IAM as AWS does for the calls linker makes: run as its own process
(``python -m tests.control.iam_server``), it prints its URL on stdout and serves until its stdin closes.

Only in this process, moto's per-request permission check is replaced: each call is split into the checks real IAM
makes (tests/control/iam_requests.py: resource ARNs and condition keys) and each check is decided by
tests/control/iam_eval.py over the caller's policies and, when the caller has one, its permissions boundary.
Signature and access-key checks stay moto's. Enforcement starts when a client POSTs ``0`` to
``/moto-api/reset-auth`` (moto's switch), after the test has made its users and keys (``enforce`` below).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto.core.exceptions import JsonRESTError
from moto.ec2.models import ec2_backends
from moto.ec2.models.availability_zones_and_regions import RegionsAndZonesBackend
from moto.iam import access_control
from moto.iam.models import iam_backends
from moto.server import ThreadedMotoServer

from tests.control.iam_eval import Decision, evaluate
from tests.control.iam_requests import Profile, Role, checks, partition_of

JSON_SERVICES = ("ssm",)


class Backends:
    """The ``World`` of iam_requests, read from moto's backends of one account."""

    def __init__(self, account: str) -> None:
        self.account = account

    def _iam(self) -> Any:
        return iam_backends[self.account]["aws"]

    def ec2_tags(self, region: str, resource_id: str) -> dict[str, str]:
        return dict(ec2_backends[self.account][region].tags.get(resource_id, {}))

    def allocation_of_association(self, region: str, association_id: str) -> str | None:
        found = [a for a in ec2_backends[self.account][region].addresses if a.association_id == association_id]
        return found[0].allocation_id if found else None

    def role(self, name: str) -> Role | None:
        try:
            role = self._iam().get_role(name)
        except Exception:
            return None
        tags = role.tags.values() if isinstance(role.tags, dict) else role.tags
        return Role(role.arn, {t["Key"]: t["Value"] for t in tags}, role.permissions_boundary_arn)

    def profile(self, name: str) -> Profile | None:
        try:
            found = self._iam().get_instance_profile(name)
        except Exception:
            return None
        return Profile(found.arn, tuple(r.arn for r in found.roles))


def _params(request: Any) -> dict[str, object]:
    body = request._body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.startswith("{"):
        return dict(json.loads(body))  # a JSON protocol (SSM)
    return {k: (v[0] if isinstance(v, list) and v else v) for k, v in request._data.items()}


def _documents(access_key: Any) -> list[dict[str, Any]]:
    return [access_control.IAMPolicy(p)._policy_json for p in access_key.collect_policies()]


def _boundary(request: Any) -> dict[str, Any] | None:
    """The caller's permissions boundary document when it acts as a role that has one (moto's users have none)."""
    name = getattr(request._access_key, "_owner_role_name", None)
    if name is None:
        return None
    backend = iam_backends[request.account_id]["aws"]
    arn = backend.get_role(name).permissions_boundary_arn
    return dict(access_control.IAMPolicy(backend.get_policy(arn))._policy_json) if arn else None


def check_action_permitted(self: Any, resource: str) -> None:
    """Replaces moto's IAMRequestBase.check_action_permitted (see the module docstring)."""
    if self._action == "sts:GetCallerIdentity":  # AWS answers it for any valid credentials
        return
    service, _, action = self._action.partition(":")
    policies = _documents(self._access_key)
    boundary = _boundary(self)
    for check in checks(Backends(self.account_id), service, action, self._region, self.account_id,
                        _params(self), resource):
        allowed = evaluate(policies, check) is Decision.ALLOW
        if allowed and boundary is not None:
            allowed = evaluate([boundary], check) is Decision.ALLOW
        if not allowed:
            print(f"iam_server: denied {check.action} on {check.resource} {dict(check.context)}", file=sys.stderr,
                  flush=True)
            what = f"{check.action} on resource: {check.resource}"  # AWS's message names both
            if service in JSON_SERVICES:  # they answer in JSON, as AWS does (botocore then reads the code)
                raise JsonRESTError("AccessDeniedException",
                                    f"User: {self._access_key.arn} is not authorized to perform: {what}")
            self._action = what
            self._raise_access_denied()


def _regions_of_own_partition(self: Any, region_names: list[str] | None = None) -> list[Any]:
    """DescribeRegions as AWS answers it: the regions of the caller's partition only (moto lists aws-cn's too, whose
    IAM users, in moto as in AWS, are not the aws partition's)."""
    own = partition_of(self.region_name)
    return [r for r in _describe_regions(self, region_names) if partition_of(r.name) == own]


_describe_regions = RegionsAndZonesBackend.describe_regions


def install() -> None:
    access_control.IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]
    RegionsAndZonesBackend.describe_regions = _regions_of_own_partition  # type: ignore[method-assign]


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.stop()


# --- the tests' side: start the server, make its users, turn enforcement on ---

ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class EnforcedCloud:
    """A reset server enforcing IAM: ``admin`` may do anything (what a test prepares and inspects with),
    ``controller`` holds exactly the policy under test; ``keys`` are the controller's."""

    url: str
    admin: Any
    controller: Any
    keys: tuple[str, str]


@contextmanager
def running_server() -> Iterator[str]:
    """The server in its own process (only there is moto's check replaced); yields its URL."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}  # AdministratorAccess, the legacy SSM policy
    proc = subprocess.Popen([sys.executable, "-m", "tests.control.iam_server"], cwd=repo, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError("the IAM-enforcing moto server did not start")
        yield url
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its handle
            proc.wait()


def _post(url: str, path: str, body: bytes = b"") -> None:
    request = urllib.request.Request(f"{url}{path}", data=body, method="POST",  # noqa: S310 (loopback http)
                                     headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=30).read()  # noqa: S310


def _user(iam: Any, name: str, policy: dict[str, Any]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def session(keys: tuple[str, str], region: str = "us-east-1") -> Any:
    return boto3.session.Session(aws_access_key_id=keys[0], aws_secret_access_key=keys[1], region_name=region)


def enforce(url: str, policy: dict[str, Any], prepare: Callable[[Any], None] = lambda admin: None) -> EnforcedCloud:
    """Reset the server, make the users (and whatever ``prepare`` makes as the administrator), then enforce."""
    _post(url, "/moto-api/reset-auth", b"inf")
    _post(url, "/moto-api/reset")
    bootstrap = session(("testing", "testing")).client("iam", endpoint_url=url)
    admin = session(_user(bootstrap, "administrator", ADMIN_POLICY))
    keys = _user(bootstrap, "linker-controller", policy)
    prepare(admin)
    _post(url, "/moto-api/reset-auth", b"0")
    return EnforcedCloud(url, admin, session(keys), keys)


if __name__ == "__main__":
    main()
