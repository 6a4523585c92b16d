"""Which EC2 instance this agent runs on: its readiness record and key are per instance (linker.control.rollout).

From the settings' ``instance_id``, else the ``LINKER_INSTANCE_ID`` environment variable (the sandbox's hosts, tests),
else the instance metadata service (IMDSv2: a session token, then ``instance-id``; the hop limit of 1 the
controller sets is enough on the host). Empty when none answers: the agent then publishes the site's key only, as
agents before per-instance keys did. Thread-safe (no shared state).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from linker.gateway.settings import AgentSettings

IMDS = "http://169.254.169.254/latest"
ENV = "LINKER_INSTANCE_ID"
ENI_ENV = "LINKER_ENI_ID"


def instance_id(settings: AgentSettings, timeout: float = 2.0) -> str:
    """This instance's id, or "" when it cannot be learnt (never raises)."""
    if settings.instance_id:
        return settings.instance_id
    if os.environ.get(ENV):
        return os.environ[ENV]
    found = _metadata(["instance-id"], timeout)
    return found if found.startswith("i-") else ""


def interface_id(settings: AgentSettings, timeout: float = 2.0) -> str:
    """The id of this instance's primary network interface (where the site's routes point when it is active,
    docs/HA.md), or "" when it cannot be learnt (never raises): from the settings' ``eni_id``, else the
    ``LINKER_ENI_ID`` environment variable, else the metadata service (the primary MAC's ``interface-id``)."""
    if settings.eni_id:
        return settings.eni_id
    if os.environ.get(ENI_ENV):
        return os.environ[ENI_ENV]
    found = _metadata(["mac", "network/interfaces/macs/{}/interface-id"], timeout)
    return found if found.startswith("eni-") else ""


def _metadata(paths: list[str], timeout: float) -> str:
    """The metadata at the last of ``paths``, each formatted with the answer to the one before; "" on failure."""
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return ""
    try:
        # a fixed http:// URL: the S310 scheme audit does not apply
        token_request = urllib.request.Request(f"{IMDS}/api/token", method="PUT",  # noqa: S310
                                               headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        with urllib.request.urlopen(token_request, timeout=timeout) as reply:  # noqa: S310
            token = reply.read().decode()
        found = ""
        for path in paths:
            request = urllib.request.Request(f"{IMDS}/meta-data/{path.format(found)}",  # noqa: S310
                                             headers={"X-aws-ec2-metadata-token": token})
            with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
                found = reply.read().decode().strip()
    except (OSError, urllib.error.URLError, ValueError):
        return ""
    return found
