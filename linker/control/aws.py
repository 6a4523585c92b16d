"""boto3 sessions and clients for the controller, and the mapping of AWS failures to linker's error tree.

``Clients(read_only=True)`` (what ``linker plan`` uses) refuses, before anything is sent, every operation that is
not a Describe/Get/List call: the planner cannot change anything even by mistake.
Clients are thread-safe in botocore; one ``Clients`` is shared by the per-region threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from linker.errors import CloudError, CredentialsError, UserError

READ_PREFIXES = ("Describe", "Get", "List", "Head")
NOT_FOUND_CODES = frozenset({
    "NoSuchEntity", "ParameterNotFound", "InvalidAllocationID.NotFound", "InvalidGroup.NotFound",
    "InvalidInstanceID.NotFound", "InvalidRoute.NotFound", "InvalidRouteTableID.NotFound",
    "InvalidAssociationID.NotFound", "InvalidPermission.NotFound", "InvalidAddress.NotFound",
    "InvalidNetworkInterfaceID.NotFound", "ParameterVersionNotFound", "404", "NoSuchBucket", "NoSuchKey",
    "NoSuchTagSet", "NoSuchTagSetError",
})
_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class ReadOnlyViolation(Exception):
    """A read-only client was asked to change something: a bug in linker, never a user's mistake."""


@dataclass(frozen=True)
class Target:
    """Where the controller's AWS calls go: the credential profile and an endpoint override (moto, LocalStack).

    ``session_factory``, when given, makes the boto3 session instead of the standard credential chain: the CLI's
    ``--sandbox`` passes one that holds only the sandbox's key, so the controller knows nothing of the sandbox."""

    profile: str | None = None
    endpoint_url: str | None = None
    session_factory: Callable[[], Any] | None = None


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    code = error_code(exc)
    return code in NOT_FOUND_CODES or code.endswith(".NotFound")


class Clients:
    """One boto3 session; clients per (service, region), built on first use and cached."""

    def __init__(self, target: Target, read_only: bool = False,
                 hooks: tuple[tuple[str, Callable[..., Any]], ...] = (), session: Any = None) -> None:
        self.target = target
        self.read_only = read_only
        self._hooks = hooks
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Any] = {}
        if session is None and target.session_factory is not None:
            session = target.session_factory()
        if session is not None:  # a caller's session (tests share one: building clients is slow)
            self._session = session
            return
        try:
            self._session = boto3.session.Session(profile_name=target.profile)
        except ProfileNotFound as exc:
            raise CredentialsError(f"AWS profile {target.profile!r} is not configured",
                                   fix="check ~/.aws/config or drop --profile") from exc

    def get(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:
            client = self._cache.get(key)
            if client is None:
                client = self._session.client(service, region_name=region, endpoint_url=self.target.endpoint_url,
                                              config=_CONFIG)
                if self.read_only:
                    client.meta.events.register("before-call.*.*", _refuse_writes)
                for event, handler in self._hooks:
                    client.meta.events.register(event, handler)
                self._cache[key] = client
            return client

    def ec2(self, region: str) -> Any:
        return self.get("ec2", region)

    def ssm(self, region: str) -> Any:
        return self.get("ssm", region)

    def iam(self) -> Any:
        # IAM is global; its endpoint is reached through us-east-1 in the aws partition
        return self.get("iam", "us-east-1")

    def known_regions(self) -> list[str]:
        """Regions botocore knows for EC2 (from its bundled endpoint data: no call is made)."""
        return self._session.get_available_regions("ec2")


def _refuse_writes(model: Any, **_: Any) -> None:
    if not model.name.startswith(READ_PREFIXES):
        raise ReadOnlyViolation(f"read-only client refused {model.service_model.service_name}:{model.name}")


@contextmanager
def cloud_call(what: str, region: str | None = None, resource: str | None = None) -> Iterator[None]:
    """Turn botocore failures inside the block into linker errors naming the call, region and resource."""
    where = " ".join(x for x in (f"in {region}" if region else "", f"on {resource}" if resource else "") if x)
    label = f"{what} {where}".strip()
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CredentialsError(
            f"no AWS credentials were found ({label})",
            fix="set AWS_PROFILE or pass --profile, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or run on a host with an instance role") from exc
    except NoRegionError as exc:
        raise UserError(f"no region for {label}") from exc
    except EndpointConnectionError as exc:
        raise CloudError(f"{label}: cannot reach the AWS endpoint ({exc})",
                         fix="check the network, the region name and --endpoint-url") from exc
    except ClientError as exc:
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        fix = None
        if code in ("AuthFailure", "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken",
                    "ExpiredTokenException", "SignatureDoesNotMatch"):
            raise CredentialsError(f"{label}: AWS rejected the credentials ({code}: {message})",
                                   fix="refresh the credentials or choose another --profile") from exc
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            fix = "grant the controller the policy printed by `linker iam-policy`"
        raise CloudError(f"{label} failed: {code}: {message}", fix=fix) from exc
    except BotoCoreError as exc:
        raise CloudError(f"{label} failed: {exc}") from exc
