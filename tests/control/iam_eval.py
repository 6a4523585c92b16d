"""An IAM policy evaluator for tests: does a set of identity policies allow one request? Pure.

Follows AWS's documented evaluation logic for identity policies (and a permissions boundary, which is evaluated
the same way and intersected by the caller): an explicit Deny wins, otherwise an Allow is needed, otherwise the
request is implicitly denied. Statements match on Action/NotAction and Resource/NotResource (``*`` and ``?``
wildcards), and on Condition: every operator of a statement, every key of an operator must hold (AND); the values
listed for one key are alternatives (OR).

Condition keys: a key the request carries is compared; a key the simulator *models* (``modeled``) but the request
lacks is absent (a positive operator fails, a negated one or ``...IfExists`` holds, ``Null: true`` holds); a key the
simulator does not model at all makes the statement not apply (neither Allow nor Deny): the test server must not
grant what it cannot check. An operator it does not know raises, so a policy never silently relies on one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any


class Decision(Enum):
    ALLOW = "allow"
    DENY = "deny"  # an explicit Deny
    IMPLICIT_DENY = "implicit-deny"  # nothing allowed it


@dataclass(frozen=True)
class Request:
    """One authorization: an action on one resource ARN, with its condition keys (lower-cased names)."""

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# condition keys whose absence the simulator knows how to judge (a prefix ends with "/")
MODELED_KEYS = ("aws:resourcetag/", "ec2:resourcetag/",
                "aws:requesttag/", "aws:tagkeys", "iam:passedtoservice", "iam:permissionsboundary",
                "iam:policyarn", "ec2:createaction", "cloudwatch:namespace")


@lru_cache(maxsize=4096)
def _pattern(glob: str, case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{regex}$", 0 if case else re.IGNORECASE)


def matches(glob: str, value: str, case: bool = True) -> bool:
    """``value`` matches the IAM wildcard ``glob`` (``*`` any run, ``?`` one character)."""
    return _pattern(glob, case).match(value) is not None


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _arn_like(glob: str, arn: str) -> bool:
    """ArnLike: each of the six colon-separated fields matched on its own (the resource part may hold colons)."""
    want, have = glob.split(":", 5), arn.split(":", 5)
    return len(want) == len(have) == 6 and all(matches(w, h) for w, h in zip(want, have, strict=True))


def _compare(base: str, policy_value: str, value: str) -> bool:
    if base == "StringEquals":
        return policy_value == value
    if base == "StringEqualsIgnoreCase":
        return policy_value.lower() == value.lower()
    if base == "StringLike":
        return matches(policy_value, value)
    if base in ("ArnEquals", "ArnLike"):
        return _arn_like(policy_value, value)
    if base == "Bool":
        return policy_value.lower() == value.lower()
    raise ValueError(f"condition operator {base} is not simulated")


NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
           "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike"}
POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool"}


def _modeled(key: str) -> bool:
    return any(key == m or (m.endswith("/") and key.startswith(m)) for m in MODELED_KEYS)


def _condition_holds(operator: str, key: str, wanted: list[str], request: Request) -> bool | None:
    """True/False, or None when the key is not modeled (the statement then does not apply)."""
    key = key.lower()
    if not _modeled(key):
        return None
    values = request.context.get(key)
    qualifier, _, op = operator.rpartition(":")
    if op == "Null":
        absent = not values
        return any((w.lower() == "true") == absent for w in wanted)
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    negated = op in NEGATED
    base = NEGATED.get(op, op)
    if base not in POSITIVE:
        raise ValueError(f"condition operator {operator} is not simulated")
    if qualifier == "ForAllValues":  # every value of the request matches one of the policy's; none: true
        ok = all(any(_compare(base, w, v) for w in wanted) for v in values or ())
        return not ok if negated else ok
    if qualifier == "ForAnyValue":
        ok = any(_compare(base, w, v) for w in wanted for v in values or ())
        return not ok if negated else ok
    if qualifier:
        raise ValueError(f"condition qualifier {qualifier} is not simulated")
    if not values:
        return True if (if_exists or negated) else False
    hit = any(_compare(base, w, v) for w in wanted for v in values)
    return not hit if negated else hit


def _conditions(statement: Mapping[str, Any], request: Request) -> bool | None:
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            held = _condition_holds(operator, key, _as_list(wanted), request)
            if held is not True:
                return held
    return True


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(matches(a, request.action, case=False) for a in _as_list(statement["Action"])):
            return False
    elif any(matches(a, request.action, case=False) for a in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(matches(r, request.resource) for r in _as_list(statement["Resource"])):
            return False
    elif any(matches(r, request.resource) for r in _as_list(statement["NotResource"])):
        return False
    return _conditions(statement, request) is True


def evaluate(policies: Sequence[Mapping[str, Any]], request: Request) -> Decision:
    """The decision of ``policies`` (all of one principal's identity policies) on ``request``."""
    allowed = False
    for policy in policies:
        statements = policy["Statement"]
        for statement in [statements] if isinstance(statements, dict) else statements:
            if not _applies(statement, request):
                continue
            if statement["Effect"] == "Deny":
                return Decision.DENY
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY

