"""The changes that remove a site: everything of the link in one region, in dependency order. Pure.

Used by ``down`` (every region) and by ``up`` when a region leaves the link. Order: the routes linker recorded as
its own (never another route of the same table), the instances (then wait until they are terminated, which frees
the ENI the security group and EIP are attached to), the instance profile and role, the security groups, the EIPs,
the link's SSM parameters with the membership document last, so that a run that dies half way can still find
the region again. The home record is not among them: ``home.py`` removes it after everything else.
"""

from __future__ import annotations

from linker import naming
from linker.control.changes import Action, Change, Kind, Phase
from linker.control.facts.model import RegionFacts
from linker.control.plan_iam import role_boundary


def teardown(rf: RegionFacts, link: str) -> list[Change]:
    """Every change that removes ``link``'s resources from the region ``rf`` describes."""
    site, out = rf.region, []

    def add(kind: Kind, target: str, *params: tuple[str, object]) -> None:
        out.append(Change(rf.region, site, Phase.CLEANUP, Action.DELETE, kind, target, tuple(params), "site removed"))

    for table in rf.route_tables:
        for cidr in sorted(table.linker_routes(link)):
            add(Kind.ROUTE, table.id, ("table", table.id), ("cidr", cidr), ("tag", naming.route_tag(link, cidr)))
        if naming.route_table_tag(link) in dict(table.tags):  # a site with two gateways (--ha)
            add(Kind.ROUTE_TABLE_TAG, table.id, ("tag", naming.route_table_tag(link)))
    live = [i.id for i in rf.instances if i.state != "terminated"]
    for instance in live:
        add(Kind.INSTANCE, instance)
    if live:
        add(Kind.INSTANCE_TERMINATED, ",".join(live), ("instances", tuple(live)))
    role = naming.resource_name(link, site)
    # a role of the same name that is not the link's is someone else's: leave it and its profile alone
    ours = dict(rf.iam.role_tags).get(naming.TAG_LINK) == link or not rf.iam.role_exists
    if rf.iam.profile_exists and ours:
        for r in rf.iam.profile_roles:
            add(Kind.INSTANCE_PROFILE_ROLE, role, ("role", r))
        add(Kind.INSTANCE_PROFILE, role)
    if rf.iam.role_exists and ours:
        if rf.iam.attached_policies or rf.iam.inline_policy is not None:
            out += role_boundary(rf.iam, site, role, Phase.CLEANUP)
        for arn in rf.iam.attached_policies:
            add(Kind.IAM_ATTACH_POLICY, role, ("arn", arn))
        if rf.iam.inline_policy is not None:
            add(Kind.IAM_ROLE_POLICY, role)
        add(Kind.IAM_ROLE, role)
    for group in rf.security_groups:
        add(Kind.SECURITY_GROUP, group.id)
    for eip in rf.eips:
        add(Kind.EIP, eip.allocation_id, ("association", eip.association_id))
    bucket = rf.bucket
    # the name carries link, site and account: an untagged bucket of that name is one a run died creating
    if bucket is not None and bucket.exists and bucket.accessible and dict(bucket.tags).get(
            naming.TAG_LINK, link) == link:
        for key in bucket.keys:
            add(Kind.PACKAGE, bucket.name, ("key", key))
        add(Kind.BUCKET, bucket.name)
    membership = naming.membership_parameter(link)
    lock = naming.lock_parameter(link)
    for name, _ in rf.parameters:
        # the home record goes last of all, after every region (control/home.py), by down or by plan
        if name not in (membership, lock, naming.home_parameter(link)):
            add(Kind.PARAMETER, name)
    if rf.parameter(membership) is not None:
        add(Kind.PARAMETER, membership)
    return out
