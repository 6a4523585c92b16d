"""The ARN partition of a region: ``aws``, ``aws-cn`` (China) or ``aws-us-gov`` (GovCloud). Pure.

Every ARN linker writes (policies, conditions, boundaries) starts with ``arn:<partition>:``; a hard-coded ``aws``
would make each of them match nothing in the other partitions.
"""

from __future__ import annotations

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


def partition_of(region: str) -> str:
    """The partition ``region`` belongs to."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
