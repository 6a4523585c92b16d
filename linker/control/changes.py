"""The planner's output: a list of ``Change`` values, applied in phases (all regions in parallel within a phase).

A value not known at plan time (the EIP a create will allocate, the ENI of an instance still to launch) is a
``Ref``; apply resolves it from what earlier phases made. Phases exist because sites depend on each other:
every site's security group needs every peer's EIP, so all EIPs are allocated before any group rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any


class Phase(IntEnum):
    SEED = 0  # membership placeholder in each new region, so a crashed run's resources are always findable
    ADDRESS = 1  # Elastic IPs: peers' endpoints are known before anything else
    FOUNDATION = 2  # security groups and their rules, IAM role, policy, instance profile
    GATEWAY = 3  # instance, its attributes; a replacement is launched beside the old one and awaited until ready
    SWITCH = 4  # EIP association and routes move to the (ready) gateway of each site
    MEMBERSHIP = 5  # the membership naming each site's gateway, in every region: peers switch to its key
    CLEANUP = 6  # replaced instances, removed sites (dependency order inside each region)
    PRUNE = 7  # the membership without the removed sites, once they are gone: until then they stay listed
    HANDOVER = 8  # planned switches (--ha): a site's new standby takes over, then ``up`` replaces the old active


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NOTE = "note"  # changes nothing: what the operator should know (gateways on another linker version)


class Kind(StrEnum):
    """What a change acts on; with the action, the key of the applier's handler table (``linker.control.apply``)."""

    # S3
    BUCKET = "bucket"
    BUCKET_TAGS = "bucket-tags"
    PACKAGE = "package"  # the controller's wheel in the site's bucket
    # SSM
    MEMBERSHIP = "membership"
    PARAMETER = "parameter"
    # EC2
    EIP = "eip"
    EIP_ASSOCIATION = "eip-association"
    SECURITY_GROUP = "security-group"
    SECURITY_GROUP_INGRESS = "security-group-ingress"
    SECURITY_GROUP_EGRESS = "security-group-egress"
    INSTANCE = "instance"
    INSTANCE_TERMINATED = "instance-terminated"  # a wait: the old instances are gone, their ENIs freed
    INSTANCE_READY = "instance-ready"  # a wait: the gateway published its own key (bootstrapped, agent running)
    GATEWAY_VERSION = "gateway-version"  # a note: the site's gateway runs another linker than this controller
    SOURCE_DEST_CHECK = "source-dest-check"
    METADATA_OPTIONS = "metadata-options"
    ROUTE = "route"
    ROUTE_TABLE_TAG = "route-table-tag"  # naming.route_table_tag: the site's gateways may move its routes (--ha)
    ACTIVE_SWITCH = "active-switch"  # a planned switch (docs/HA.md rule 8), awaited until the new active holds
    ROLLING = "rolling"  # a note: the site's active gateway is replaced after the switch, by the same run's next pass
    # IAM
    IAM_ROLE = "iam-role"
    IAM_ROLE_POLICY = "iam-role-policy"
    IAM_ATTACH_POLICY = "iam-attach-policy"
    INSTANCE_PROFILE = "instance-profile"
    INSTANCE_PROFILE_ROLE = "instance-profile-role"
    IAM_BOUNDARY = "iam-boundary"  # linker's permissions boundary policy (an administrator's, made once)
    IAM_ROLE_BOUNDARY = "iam-role-boundary"  # the boundary set on a role


@dataclass(frozen=True)
class Ref:
    """A value made by an earlier change: ``kind`` is eip-ip, eip-allocation, instance, eni or security-group."""

    kind: str
    site: str

    def __str__(self) -> str:
        return f"<{self.kind} of {self.site}>"


@dataclass(frozen=True)
class Lower:
    """The value paired with the lower instance id among ``pairs`` ((instance, value), each a value or a ``Ref``):
    the gateway of a site with two that the controller points the routes at (docs/HA.md rule 3), while the ids of
    instances still to be launched are unknown."""

    pairs: tuple[tuple[Any, Any], ...]

    def pick(self, resolve: Any) -> Any:
        """The value of the lower instance, each part through ``resolve``; None when a part resolves to None."""
        resolved = [(resolve(i), resolve(v)) for i, v in self.pairs]
        if any(i is None or v is None for i, v in resolved):
            return None
        return min(resolved)[1]

    @property
    def unresolved(self) -> bool:
        return any(isinstance(x, Ref) for pair in self.pairs for x in pair)

    def __str__(self) -> str:
        return f"<that of the lower of {', '.join(str(i) for i, _ in self.pairs)}>"


@dataclass(frozen=True)
class Change:
    """One AWS change. ``params`` is a tuple of (name, value) pairs so changes stay hashable and comparable."""

    region: str
    site: str
    phase: Phase
    action: Action
    kind: Kind
    target: str
    params: tuple[tuple[str, Any], ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        # plain strings are accepted and checked: an unknown action or kind is a bug, found here rather than in apply
        object.__setattr__(self, "action", Action(self.action))
        object.__setattr__(self, "kind", Kind(self.kind))

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params if k not in ("user_data", "document", "policy"))
        text = f"{self.action} {self.kind} {self.target}".rstrip()
        return f"{text} ({shown})" if shown else text

    def to_dict(self) -> dict[str, Any]:
        return {"region": self.region, "site": self.site, "phase": self.phase.name.lower(),
                "action": self.action.value, "kind": self.kind.value, "target": self.target, "reason": self.reason,
                "params": {k: _shown(v) for k, v in self.params if k not in ("user_data", "document", "policy")}}


def _shown(value: Any) -> Any:
    """A parameter as plain data for ``--json``: references as their description, typed values as their dict."""
    if isinstance(value, (Ref, Lower)):
        return str(value)
    if isinstance(value, tuple):
        return tuple(_shown(v) for v in value)
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def by_phase(changes: list[Change]) -> dict[Phase, dict[str, list[Change]]]:
    """{phase: {region: [changes in plan order]}}, phases ascending."""
    out: dict[Phase, dict[str, list[Change]]] = {}
    for c in sorted(changes, key=lambda c: c.phase):
        out.setdefault(c.phase, {}).setdefault(c.region, []).append(c)
    return out
