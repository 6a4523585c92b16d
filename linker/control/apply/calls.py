"""Idempotent boto3 calls: a delete that finds nothing, or a create that finds its resource, is done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from linker.control.aws import error_code, is_not_found

log = logging.getLogger("linker.control")

# What EC2 answers for a resource created moments ago that this call cannot see yet (AWS documents its API as
# eventually consistent): retried with bounded backoff, never taken as "gone".
NOT_YET_VISIBLE = frozenset({"InvalidInstanceID.NotFound", "InvalidGroup.NotFound", "InvalidAllocationID.NotFound",
                             "InvalidRouteTableID.NotFound", "InvalidNetworkInterfaceID.NotFound"})
SETTLE_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # about 15 s in all, then the error stands


def settled(fn: Callable[..., Any], delays: tuple[float, ...] = SETTLE_DELAYS, **kwargs: Any) -> Any:
    """``fn(**kwargs)``, retried after each of ``delays`` while it fails with a NOT_YET_VISIBLE code."""
    for delay in (*delays, None):
        try:
            return fn(**kwargs)
        except ClientError as exc:
            if error_code(exc) not in NOT_YET_VISIBLE or delay is None:
                raise
            log.info("not visible yet, retrying in %.1f s", delay, extra={"code": error_code(exc)})
            time.sleep(delay)
    raise AssertionError("unreachable")


def ignore_not_found(fn: Callable[..., Any], **kwargs: Any) -> None:
    """``fn(**kwargs)``; NotFound counts as done, any other ClientError is raised."""
    try:
        fn(**kwargs)
    except ClientError as exc:
        if not is_not_found(exc):
            raise


def ignore_exists(fn: Callable[..., Any], **kwargs: Any) -> None:
    """``fn(**kwargs)``; EntityAlreadyExists (IAM) counts as done, any other ClientError is raised."""
    try:
        fn(**kwargs)
    except ClientError as exc:
        if error_code(exc) != "EntityAlreadyExists":
            raise
