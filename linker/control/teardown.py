"""The changes that remove a site: everything of the link in one region, in dependency order. Pure.

Used by ``down`` (every region) and by ``up`` when a region leaves the link. Order: the routes linker recorded as
its own (never another route of the same table), the instances (then wait until they are terminated, which frees
the ENI the security group and EIP are attached to), the instance profile and role, the security groups, the EIPs,
the link's SSM parameters with the membership document last, so that a run that dies half way can still find
the region again.
"""

from __future__ import annotations

from linker import naming
from linker.control.changes import Change, Phase
from linker.control.facts.model import RegionFacts


def teardown(rf: RegionFacts, link: str) -> list[Change]:
    """Every change that removes ``link``'s resources from the region ``rf`` describes."""
    site, out = rf.region, []

    def add(kind: str, target: str, *params: tuple[str, object]) -> None:
        out.append(Change(rf.region, site, Phase.CLEANUP, "delete", kind, target, tuple(params), "site removed"))

    for table in rf.route_tables:
        for cidr in sorted(table.linker_routes(link)):
            add("route", table.id, ("table", table.id), ("cidr", cidr), ("tag", naming.route_tag(link, cidr)))
    live = [i.id for i in rf.instances if i.state != "terminated"]
    for instance in live:
        add("instance", instance)
    if live:
        add("instance-terminated", ",".join(live), ("instances", tuple(live)))
    role = naming.resource_name(link, site)
    # a role of the same name that is not the link's is someone else's: leave it and its profile alone
    ours = dict(rf.iam.role_tags).get(naming.TAG_LINK) == link or not rf.iam.role_exists
    if rf.iam.profile_exists and ours:
        for r in rf.iam.profile_roles:
            add("instance-profile-role", role, ("role", r))
        add("instance-profile", role)
    if rf.iam.role_exists and ours:
        for arn in rf.iam.attached_policies:
            add("iam-attach-policy", role, ("arn", arn))
        if rf.iam.inline_policy is not None:
            add("iam-role-policy", role)
        add("iam-role", role)
    for group in rf.security_groups:
        add("security-group", group.id)
    for eip in rf.eips:
        add("eip", eip.allocation_id, ("association", eip.association_id))
    bucket = rf.bucket
    # the name carries link, site and account: an untagged bucket of that name is one a run died creating
    if bucket is not None and bucket.exists and bucket.accessible and dict(bucket.tags).get(
            naming.TAG_LINK, link) == link:
        for key in bucket.keys:
            add("package", bucket.name, ("key", key))
        add("bucket", bucket.name)
    membership = naming.membership_parameter(link)
    lock = naming.lock_parameter(link)
    for name, _ in rf.parameters:
        if name not in (membership, lock):
            add("parameter", name)
    if rf.parameter(membership) is not None:
        add("parameter", membership)
    return out
