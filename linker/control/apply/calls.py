"""Idempotent boto3 calls: a delete that finds nothing, or a create that finds its resource, is done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from linker.control.aws import error_code, is_not_found


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
