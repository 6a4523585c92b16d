"""The IAM part of a plan that ``up`` and ``down`` share: linker's permissions boundary. Pure.

Every role linker makes carries the boundary ``policy/linker/linker-gateway-boundary`` (linker/control/iam_policy.py
says why); the controller's policy lets it change a role only within that boundary, so the boundary is made before
any role and set on an older role before anything else is done to it.
"""

from __future__ import annotations

from linker.control.changes import Action, Change, Kind, Phase
from linker.control.facts.model import IamFacts
from linker.control.iam_policy import boundary_json
from linker.control.partition import partition_of
from linker.control.render import canonical_json


def plan_boundary(sites: list[tuple[str, IamFacts]]) -> list[Change]:
    """Create linker's permissions boundary when it does not exist yet: first of all (an administrator makes it
    once per account; ``up`` can only when its identity may, and otherwise stops with the command to run)."""
    missing = [(site, iam) for site, iam in sites if iam.boundary_arn and not iam.boundary_exists]
    if not missing:
        return []
    site, iam = missing[0]
    partition = partition_of(site)
    return [Change(site, site, Phase.SEED, Action.CREATE, Kind.IAM_BOUNDARY, iam.boundary_arn,
                   (("document", canonical_json(boundary_json(partition))), ("partition", partition)),
                   "caps every role linker makes (made once per account)")]


def role_boundary(iam: IamFacts, site: str, role: str, phase: Phase) -> list[Change]:
    """Set linker's boundary on an existing role that lacks it (made by an older linker): before any other change
    of the role, which the controller's policy allows only on a role within the boundary."""
    if not iam.boundary_arn or iam.role_boundary == iam.boundary_arn:
        return []
    return [Change(site, site, phase, Action.UPDATE, Kind.IAM_ROLE_BOUNDARY, role, (("boundary", iam.boundary_arn),),
                   "within linker's permissions boundary")]
