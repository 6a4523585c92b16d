"""``plan(spec, facts) -> [Change]``: what ``up`` must change so that AWS matches the spec. Pure.

Every refusal happens here, before any change: a link managed by Terraform, overlapping CIDRs, no public subnet,
no AMI, a route to a peer CIDR that linker did not make, a less specific route of another owner that covers a peer
CIDR (unless the user accepts it), an IAM role of the same name that is not the link's.
An empty list means everything already exists as asked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from linker import naming
from linker.contract import Membership
from linker.control.changes import Action, Change, Kind, Lower, Phase, Ref
from linker.control.facts.model import Eip, LinkFacts, RegionFacts, Route, RouteTable
from linker.control.home import plan_home
from linker.control.membership_doc import PlannedSite, check_size, membership_of
from linker.control.package import Package
from linker.control.partition import partition_of
from linker.control.placement import choose_vpc, public_subnet, public_subnets, vpc_route_tables
from linker.control.plan_ha import (
    Gateway,
    first_only,
    lower,
    own_eip,
    plan_handover,
    plan_pair,
    planned_pair,
    remove_second,
    rolling_hold,
    route_owner,
    route_table_tags,
    second_key,
    second_only,
    serving_entry,
)
from linker.control.plan_iam import plan_boundary, role_boundary
from linker.control.render import GatewayInputs, assume_role_policy, role_policy, user_data
from linker.control.rollout import (
    Rollout,
    gateway_records,
    instance_config,
    keep_fixes,
    kept_instance,
    launch_tags,
    ready,
    wheels_to_delete,
)
from linker.control.teardown import teardown
from linker.errors import CloudError, ConflictError, ManagedElsewhereError, SpecError
from linker.spec import LinkSpec, SiteCidrs, check_overlap

Rule = tuple[str, int | None, int | None, "str | Ref"]  # protocol, from port, to port, source CIDR or EIP ref
HTTPS_OUT: Rule = ("tcp", 443, 443, "0.0.0.0/0")  # the AWS APIs the agent and user-data call
KEEP_BUILDS = Rollout()  # the default: gateways keep the build they run, none counts as overdue
EC2_DEFAULT_EGRESS: Rule = ("-1", None, None, "0.0.0.0/0")  # what EC2 gives every new security group


@dataclass(frozen=True)
class Site:
    """A site of the spec with the facts the plan derives for it."""

    name: str
    facts: RegionFacts
    vpc_id: str
    vpc_reason: str
    cidrs: tuple[str, ...]
    subnet: str
    eip: Eip | None
    second_eip: Eip | None = None  # the EIP of the site's second gateway (--ha), when it has one


def plan(spec: LinkSpec, facts: LinkFacts, package: Package, rollout: Rollout = KEEP_BUILDS) -> list[Change]:
    """The changes that make ``facts`` match ``spec`` with gateways running ``package`` (kept on the build they
    run unless ``rollout.upgrade``, linker.control.rollout); raises a LinkerError instead when the link can't be
    built."""
    refuse_managed_elsewhere(facts)
    chosen = [(r, *choose_vpc(facts.region(r), spec.vpc_for(r))) for r in spec.regions]
    # overlap first: with default VPCs it is the root problem, whatever else is missing
    check_overlap([SiteCidrs(r, vpc.id, _ipv4(vpc.cidrs)) for r, vpc, _ in chosen])
    sites = [resolve_site(spec, facts.region(r)) for r in spec.regions]
    removed = [s for s in facts.known_sites() if s not in spec.regions]
    changes: list[Change] = plan_boundary([(s.name, s.facts.iam) for s in sites])
    gateways: dict[str, str | Ref | None] = {}
    pairs: dict[str, tuple[Gateway, Gateway]] = {}
    handovers: list[Change] = []
    for site in sites:
        peers = [p for p in sites if p.name != site.name]
        second: Gateway | None = None
        extra = remove_second(site.facts, facts.link)  # without --ha: the second gateway goes, if there is one
        rolled = rollout
        if spec.ha:  # the second gateway first: the routes go to the lower instance id of the two
            rolled = _rolling(spec, site, facts.link, package, rollout)  # an active due is replaced after a switch
            extra, first, second = _plan_second(spec, site, facts.link, package, rolled)
            pairs[site.name] = (first, second)
        own = plan_site(spec, site, peers, facts.link, package, rolled, second)
        gateways[site.name] = _gateway_after(own, site)
        tables = tuple(t.id for t in vpc_route_tables(site.facts, site.vpc_id)) if peers else ()
        changes += own + [c for c in extra if c not in own]
        changes += route_table_tags(site.facts, tables, facts.link, spec.ha)
        if site.name in pairs:
            handovers += plan_handover(site.facts, facts.link, pairs[site.name], rolled)
    changes += plan_membership(spec, sites, facts, removed, gateways, pairs)
    for name in removed:
        changes += teardown(facts.region(name), facts.link)
    return changes + plan_home(facts, spec.regions, removed) + handovers  # last, as they are made (a rolling order)


def refuse_managed_elsewhere(facts: LinkFacts, command: str = "up") -> None:
    """ManagedElsewhereError when any of the link's resources is managed by Terraform."""
    found = {rf.region: rf.managed_by_terraform() for rf in facts.regions
             if naming.MANAGED_BY_TERRAFORM in rf.managed_by()}
    if found:
        raise managed_by_terraform_error(facts.link, found, command)


def managed_by_terraform_error(link: str, found: dict[str, tuple[str, ...]], command: str) -> ManagedElsewhereError:
    """The refusal of ``linker <command>`` on a link whose resources ``found`` ({region: ids}) Terraform manages."""
    where = "; ".join(f"{region}: {', '.join(ids) or 'its resources'}" for region, ids in sorted(found.items()))
    if command == "down":
        fix = ("remove it with `terraform destroy` in the Terraform configuration that manages it "
               "(terraform/modules/gateway)")
    else:
        fix = ("change it with Terraform (`terraform plan` / `terraform apply` in the configuration that manages it, "
               "terraform/modules/gateway), or give linker another link with --name")
    return ManagedElsewhereError(
        f"link {link!r} is managed by Terraform ({where} tagged {naming.TAG_MANAGED_BY}="
        f"{naming.MANAGED_BY_TERRAFORM}); `linker {command}` will not change it, so that Terraform's state stays "
        "true", fix=fix)


def resolve_site(spec: LinkSpec, rf: RegionFacts) -> Site:
    vpc, reason = choose_vpc(rf, spec.vpc_for(rf.region))
    subnet = public_subnet(rf, vpc.id)
    public = public_subnets(rf, vpc.id)
    if subnet is None and public:
        zones = ", ".join(sorted({s.availability_zone for s in public}))
        raise SpecError(f"{rf.region}: {spec.instance_type} is not offered in the availability zones of VPC "
                        f"{vpc.id}'s public subnets ({zones})",
                        fix="choose another --instance-type, or add a public subnet in a zone that offers it "
                            f"(aws ec2 describe-instance-type-offerings --location-type availability-zone "
                            f"--filters Name=instance-type,Values={spec.instance_type} --region {rf.region})")
    if subnet is None:
        raise SpecError(f"{rf.region}: VPC {vpc.id} ({reason}) has no public subnet: no subnet's route table sends "
                        "0.0.0.0/0 to an internet gateway, so a gateway there could not reach its peers",
                        fix=f"add an internet gateway and a 0.0.0.0/0 route to a subnet of {vpc.id}, "
                            f"or choose another VPC with --vpc {rf.region}=vpc-...")
    cidrs = _ipv4(vpc.cidrs)
    eips = _own(first_only(rf).eips, rf.region)
    return Site(rf.region, rf, vpc.id, reason, cidrs, subnet, eips[0] if eips else None,
                own_eip(second_only(rf), rf.region))


def _plan_second(spec: LinkSpec, site: Site, link: str, package: Package,
                 rollout: Rollout) -> tuple[list[Change], Gateway, Gateway]:
    """The second gateway's changes, and the two gateways as they will be (first, second)."""
    if site.facts.bucket is None:
        raise RuntimeError(f"facts of {site.name} lack the bucket")  # a bug: gather always reads it
    group = next((g for g in _own(site.facts.security_groups, site.name) if g.vpc_id == site.vpc_id), None)
    return plan_pair(spec, gateway_inputs(spec, site.name, site.facts.bucket.name, package), site.facts, site.vpc_id,
                     site.subnet, site.eip, group.id if group else Ref("security-group", site.name), link, package,
                     rollout)


def _rolling(spec: LinkSpec, site: Site, link: str, package: Package, rollout: Rollout) -> Rollout:
    """``rollout`` holding the site's active gateway when it is due (plan_ha.rolling_hold)."""
    bucket = site.facts.bucket.name if site.facts.bucket else ""
    return rolling_hold(spec, gateway_inputs(spec, site.name, bucket, package), site.facts, site.vpc_id, link,
                        package, rollout)


def _ipv4(cidrs: Sequence[str]) -> tuple[str, ...]:
    return tuple(c for c in cidrs if ":" not in c)


def _own(resources: Sequence[Any], site: str) -> list[Any]:
    """The site's resources among the link's, in a stable order (first is the one kept)."""
    own = [r for r in resources if dict(r.tags).get(naming.TAG_SITE) == site]
    return sorted(own, key=lambda r: (not getattr(r, "association_id", None), getattr(r, "allocation_id", "")))


def gateway_inputs(spec: LinkSpec, site: str, bucket: str, package: Package) -> GatewayInputs:
    return GatewayInputs(link=spec.name, site=site, region=site, port=spec.port, package_bucket=bucket,
                         package_key=package.key, package_sha256=package.sha256, partition=partition_of(site),
                         ha=spec.ha)


def _gateway_after(changes: list[Change], site: Site) -> str | Ref | None:
    """The instance serving ``site`` once ``changes`` (its own) are made: where its EIP goes."""
    move = next((c for c in changes if c.kind == Kind.EIP_ASSOCIATION), None)
    return move.param("instance") if move else (site.eip.instance_id if site.eip else None)


def plan_site(spec: LinkSpec, site: Site, peers: list[Site], link: str, package: Package,
              rollout: Rollout = KEEP_BUILDS, second: Gateway | None = None) -> list[Change]:
    """The site's changes for its (first) gateway; with ``second`` (``--ha``), the routes go to the lower instance
    id of the two and stay where either gateway already holds them (docs/HA.md: the gateways own them)."""
    rf, name = first_only(site.facts), site.name
    tags = (("tags", tuple(sorted(naming.base_tags(link, name).items()))),)
    out: list[Change] = []

    def add(phase: Phase, action: Action, kind: Kind, target: str, reason: str, *params: tuple[str, object]) -> None:
        out.append(Change(name, name, phase, action, kind, target, tuple(params), reason))

    if rf.bucket is None:
        raise RuntimeError(f"facts of {name} lack the bucket")  # a bug: gather always reads it
    bucket = rf.bucket
    if not bucket.accessible:
        raise ConflictError(f"{name}: the S3 bucket name {bucket.name} is taken by a bucket this account cannot read",
                            fix="choose another link name with --name")
    if not bucket.exists:
        add(Phase.FOUNDATION, Action.CREATE, Kind.BUCKET, bucket.name, "holds the controller's wheel for the gateway",
            *tags)
    elif dict(bucket.tags).get(naming.TAG_LINK) != link:
        add(Phase.FOUNDATION, Action.UPDATE, Kind.BUCKET_TAGS, bucket.name, "mark the bucket as the link's", *tags)
    inputs = gateway_inputs(spec, name, bucket.name, package)
    config = instance_config(spec, inputs)
    keep = kept_instance(rf, link, name, config, site.vpc_id, spec.instance_type, package, rollout)
    if keep is None and package.key not in bucket.keys:  # a kept gateway keeps the build it runs
        add(Phase.FOUNDATION, Action.CREATE, Kind.PACKAGE, bucket.name, f"linker {package.filename}",
            ("key", package.key))

    if site.eip is None:
        add(Phase.ADDRESS, Action.CREATE, Kind.EIP, naming.resource_name(link, name), "the gateway's public endpoint",
            *tags)
    eip_alloc = site.eip.allocation_id if site.eip else Ref("eip-allocation", name)

    group = next((g for g in _own(rf.security_groups, name) if g.vpc_id == site.vpc_id), None)
    if group is None:
        add(Phase.FOUNDATION, Action.CREATE, Kind.SECURITY_GROUP, naming.resource_name(link, name),
            "tunnel traffic from peers only, no SSH", ("vpc", site.vpc_id), *tags)
    group_id = group.id if group else Ref("security-group", name)
    # The tunnel port from each peer gateway's EIP, and everything from the site's own VPC: security groups filter
    # forwarded packets too, and what the gateway forwards into the tunnels reaches its ENI from its own VPC.
    # Traffic of the peer VPCs arrives through the tunnel, never at the ENI, so their CIDRs are not needed here.
    wanted: list[Rule] = [("udp", spec.port, spec.port, f"{p.eip.public_ip}/32" if p.eip else Ref("eip-ip", p.name))
                          for p in peers]
    if spec.ha:  # every peer's second gateway too
        wanted += [("udp", spec.port, spec.port,
                    f"{p.second_eip.public_ip}/32" if p.second_eip else Ref("eip-ip", second_key(p.name)))
                   for p in peers]
    wanted += [("-1", None, None, c) for c in site.cidrs]
    have = {(x.protocol, x.from_port, x.to_port, x.cidr) for x in group.ingress} if group else set()
    missing = tuple(r for r in wanted if r not in have)
    extra = tuple(sorted(have - set(wanted), key=str))
    if missing:
        add(Phase.FOUNDATION, Action.UPDATE, Kind.SECURITY_GROUP_INGRESS, str(group_id), "allow the peers",
            ("group", group_id), ("rules", missing))
    if extra:
        add(Phase.FOUNDATION, Action.DELETE, Kind.SECURITY_GROUP_INGRESS, str(group_id), "no longer a peer",
            ("group", group_id), ("rules", extra))
    # Egress: the tunnel port to each peer's EIP, what the tunnels deliver into the site's VPC, and HTTPS for the AWS
    # APIs (SSM, S3, CloudWatch, EC2). DNS, NTP and the metadata service are link-local, not filtered by groups.
    # A new group comes with EC2's allow-all egress, which goes (terraform/modules/gateway does the same).
    wanted_out: list[Rule] = [("udp", spec.port, spec.port, r[3]) for r in wanted if r[0] == "udp"]
    wanted_out += [("-1", None, None, c) for c in site.cidrs] + [HTTPS_OUT]
    have_out = {(x.protocol, x.from_port, x.to_port, x.cidr) for x in group.egress} if group else {EC2_DEFAULT_EGRESS}
    missing_out = tuple(r for r in wanted_out if r not in have_out)
    extra_out = tuple(sorted(have_out - set(wanted_out), key=str))
    if missing_out:
        add(Phase.FOUNDATION, Action.UPDATE, Kind.SECURITY_GROUP_EGRESS, str(group_id),
            "to the peers, the site VPC and the AWS APIs only", ("group", group_id), ("rules", missing_out))
    if extra_out:
        add(Phase.FOUNDATION, Action.DELETE, Kind.SECURITY_GROUP_EGRESS, str(group_id), "no open egress",
            ("group", group_id), ("rules", extra_out))

    out += _plan_iam(inputs, site, link)

    if keep is None:
        if rf.ami is None:
            raise CloudError(f"{name}: no Amazon Linux 2023 AMI found in the public SSM parameters",
                             fix="check that the region is enabled for the account")
        add(Phase.GATEWAY, Action.CREATE, Kind.INSTANCE, naming.resource_name(link, name), "the gateway host",
            ("ami", rf.ami), ("instance_type", spec.instance_type), ("subnet", site.subnet),
            ("group", group_id), ("profile", naming.resource_name(link, name)),
            ("config", config), ("pin", tuple(sorted(launch_tags(package).items()))),
            ("user_data", user_data(inputs)), *tags)
    else:
        for action, kind, why in keep_fixes(name, keep, package, rollout):
            add(Phase.GATEWAY, action, kind, keep.id, why)
    instance_id = keep.id if keep else Ref("instance", name)
    eni = (keep.eni_id or "") if keep else Ref("eni", name)
    # make before break: the site's running gateway serves until its successor is ready (linker.control.rollout)
    holder = site.eip.instance_id if site.eip else None
    serving = next((i for i in _own(rf.instances, name) if i.id == holder and i.state == "running"), None)
    successor = keep is None or (serving is not None and serving.id != keep.id and not ready(rf, link, name, keep.id))
    if serving is not None and successor:
        add(Phase.GATEWAY, Action.UPDATE, Kind.INSTANCE_READY, str(instance_id),
            f"{serving.id} serves until its successor is ready", ("instance", instance_id), ("serving", serving.id))
    if site.eip is None or keep is None or site.eip.instance_id != keep.id:
        add(Phase.SWITCH, Action.UPDATE, Kind.EIP_ASSOCIATION, str(eip_alloc), "the gateway's public endpoint",
            ("allocation", eip_alloc), ("instance", instance_id))
    # the routes move with the EIP, once the gateway they point to is ready
    own: frozenset[str] = frozenset()
    if second is not None:  # a new route goes to the routes' owner, so as not to make a mix: else the lower id
        own = frozenset(e for e in ((keep.eni_id if keep else None), second.kept_eni) if e)
        eni = route_owner(site.facts, link, sorted(own)) or lower((instance_id, eni), (second.instance, second.eni))
    _plan_routes(site, peers, link, eni, lambda _phase, *rest: add(Phase.SWITCH, *rest),
                 spec.override_covering_routes, own)
    retired = [i.id for i in _own(rf.instances, name) if keep is None or i.id != keep.id]
    for old in retired:
        add(Phase.CLEANUP, Action.DELETE, Kind.INSTANCE, old, "replaced by a gateway with the current configuration")
    kept = {i.id for i in (keep, second.kept if second else None) if i is not None}
    for record in gateway_records(rf, link, name, kept):
        add(Phase.CLEANUP, Action.DELETE, Kind.PARAMETER, record, "the key of a replaced gateway")
    stale_groups = [g for g in _own(rf.security_groups, name) if g.vpc_id != site.vpc_id]
    if stale_groups and retired:  # a group is deleted only once no instance uses it
        add(Phase.CLEANUP, Action.DELETE, Kind.INSTANCE_TERMINATED, ",".join(retired), "the old VPC's group is in use",
            ("instances", tuple(retired)))
    for g in stale_groups:
        add(Phase.CLEANUP, Action.DELETE, Kind.SECURITY_GROUP, g.id, "the site moved to another VPC")
    # the wheelhouse the site's gateway was installed from stays while it runs
    in_use = {dict(i.tags).get(naming.TAG_PACKAGE) if i else package.key
              for i in (keep, *((second.kept,) if second else ()))}
    for key in wheels_to_delete(bucket.keys, in_use):
        add(Phase.CLEANUP, Action.DELETE, Kind.PACKAGE, bucket.name, "an older wheel", ("key", key))
    return out


def _plan_iam(inputs: GatewayInputs, site: Site, link: str) -> list[Change]:
    iam, name, role = site.facts.iam, site.name, naming.resource_name(link, site.name)
    tags = (("tags", tuple(sorted({**naming.base_tags(link, name), naming.TAG_ROLE: naming.ROLE_IAM_ROLE}.items()))),)
    if iam.role_exists and dict(iam.role_tags).get(naming.TAG_LINK) != link:
        raise ConflictError(f"an IAM role named {role} exists and is not tagged {naming.TAG_LINK}={link}",
                            fix="delete or rename that role, or choose another link name with --name")
    out = []
    if not iam.role_exists:
        out.append(Change(name, name, Phase.FOUNDATION, Action.CREATE, Kind.IAM_ROLE, role,
                          (("document", assume_role_policy()), ("boundary", iam.boundary_arn), *tags),
                          "the gateway's identity, within linker's permissions boundary"))
    else:
        out += role_boundary(iam, name, role, Phase.FOUNDATION)
    policy = role_policy(inputs)
    if iam.inline_policy != policy:
        out.append(Change(name, name, Phase.FOUNDATION, Action.UPDATE, Kind.IAM_ROLE_POLICY, role,
                          (("policy", policy),), "read the link's parameters, write the site's own"))
    # Session Manager's own actions are in the inline policy: a managed policy (AmazonSSMManagedInstanceCore, which
    # linker attached before) would let an internet-facing process read every parameter of the account.
    for arn in iam.attached_policies:
        out.append(Change(name, name, Phase.FOUNDATION, Action.DELETE, Kind.IAM_ATTACH_POLICY, role,
                          (("arn", arn),), "the inline policy holds all the gateway may do"))
    if not iam.profile_exists:
        out.append(Change(name, name, Phase.FOUNDATION, Action.CREATE, Kind.INSTANCE_PROFILE, role,
                          tags, "lets the instance assume the role"))
    if role not in iam.profile_roles:
        out.append(Change(name, name, Phase.FOUNDATION, Action.UPDATE, Kind.INSTANCE_PROFILE_ROLE, role,
                          (("role", role),), "lets the instance assume the role"))
    return out


def _plan_routes(site: Site, peers: list[Site], link: str, eni: str | Ref | Lower, add: Callable[..., None],
                 override_covering: bool = False, own: frozenset[str] = frozenset()) -> None:
    """Each peer CIDR -> this gateway's ENI in each route table of the VPC; never over a route linker did not make,
    nor, unless ``override_covering``, under a less specific one of another owner (``refuse_covering``). A route
    to one of the ENIs in ``own`` (the site's gateways when it has two) is left where it is."""
    rf = site.facts
    desired = {c: p.name for p in peers for c in p.cidrs}
    vpc_tables = {t.id for t in vpc_route_tables(rf, site.vpc_id)}
    for table in rf.route_tables:
        ours = table.linker_routes(link)
        if table.id not in vpc_tables and not ours:
            continue
        for cidr in sorted(desired if table.id in vpc_tables else {}):
            route = table.route(cidr)
            if route is not None and cidr not in ours:
                raise ConflictError(
                    f"{rf.region}: route table {table.id} already has a route to {cidr} (peer {desired[cidr]}) via "
                    f"{route.target or 'an unknown target'}, which linker did not create; linker never overwrites it",
                    fix=f"remove that route if it is stale, or link a VPC whose CIDR does not collide with {cidr}")
            if route is None and not override_covering:
                refuse_covering(rf, table, cidr, desired[cidr])
            if route is None:
                add(Phase.GATEWAY, Action.CREATE, Kind.ROUTE, table.id, f"to peer {desired[cidr]}",
                    ("table", table.id), ("cidr", cidr), ("eni", eni), ("tag", naming.route_tag(link, cidr)))
            elif route.eni != eni and route.eni not in own:
                add(Phase.GATEWAY, Action.UPDATE, Kind.ROUTE, table.id,
                    f"to peer {desired[cidr]} via the current gateway",
                    ("table", table.id), ("cidr", cidr), ("eni", eni), ("tag", naming.route_tag(link, cidr)))
        for cidr in sorted(set(ours) - (set(desired) if table.id in vpc_tables else set())):
            add(Phase.GATEWAY, Action.DELETE, Kind.ROUTE, table.id, "no longer a peer's CIDR",
                ("table", table.id), ("cidr", cidr), ("tag", naming.route_tag(link, cidr)))


# what a route's target is, by its id's prefix; a route to an internet gateway (igw-) or the VPC itself (local) is
# not taken away by a more specific route to a peer: traffic to a private peer CIDR never meant to go there
TARGET_KINDS = {"tgw-": "a transit gateway", "pcx-": "a VPC peering connection", "nat-": "a NAT gateway",
                "vgw-": "a virtual private gateway (VPN)", "eni-": "a network interface", "i-": "an instance",
                "lgw-": "a local gateway", "vpce-": "a VPC endpoint", "cagw-": "a carrier gateway"}
NOT_TAKEN = ("igw-", "local")


def covering_routes(rf: RegionFacts, table: RouteTable, cidr: str) -> list[tuple[Route, str]]:
    """The routes of ``table`` to another target than the internet whose destination is less specific than
    ``cidr`` and contains it (a prefix list: one of its CIDRs contains it): (route, the covering CIDR)."""
    net = ipaddress.ip_network(cidr)
    lists = dict(rf.prefix_lists)
    out = []
    for route in table.routes:
        if route.target.startswith(NOT_TAKEN) or route.destination == cidr:
            continue  # the same destination is refused apart, as a route linker did not make
        if route.destination.startswith("pl-"):
            found = [c for c in lists.get(route.destination, ()) if _contains(c, net, strict=False)]
        else:
            found = [route.destination] if _contains(route.destination, net, strict=True) else []
        out += [(route, c) for c in found[:1]]
    return out


def _contains(outer: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network, strict: bool) -> bool:
    try:
        wider = ipaddress.ip_network(outer, strict=False)
    except ValueError:
        return False
    if wider.version != net.version or not net.subnet_of(wider):  # type: ignore[arg-type]
        return False
    return wider.prefixlen < net.prefixlen or not strict


def refuse_covering(rf: RegionFacts, table: RouteTable, cidr: str, peer: str) -> None:
    """ConflictError naming the covering route, its target and the fix, when ``covering_routes`` finds one."""
    found = covering_routes(rf, table, cidr)
    if not found:
        return
    route, wider = found[0]
    kind = next((k for p, k in TARGET_KINDS.items() if route.target.startswith(p)), "another target")
    via = f"{route.destination} ({wider})" if route.destination.startswith("pl-") else route.destination
    raise ConflictError(
        f"{rf.region}: route table {table.id} sends {via} to {route.target} ({kind}), which covers peer {peer}'s "
        f"{cidr}; linker's more specific route to {cidr} would silently take that traffic away from it",
        fix=f"if {cidr} should reach {peer} through linker, run again with --override-covering-routes; otherwise "
            f"link a VPC whose CIDR that route does not cover, or narrow the route")


def plan_membership(spec: LinkSpec, sites: list[Site], facts: LinkFacts, removed: list[str],
                    gateways: dict[str, str | Ref | None] | None = None,
                    pairs: dict[str, tuple[Gateway, Gateway]] | None = None) -> list[Change]:
    """Seed each region's document before anything is made there; name each site's gateway once the EIPs and
    routes moved (peers switch keys then); drop the removed sites last, once they are gone. A site in ``pairs``
    has two gateways: the document lists both and names the lower instance id as the site's own."""
    gateways, pairs = gateways or {}, pairs or {}
    planned = [_planned_site(spec, s, gateways.get(s.name), pairs.get(s.name), facts.link) for s in sites]
    check_size(facts.link, planned)
    # the gateways serving now: a seed names them, so that a successor's key is not used before it takes over
    # (a site with two gateways not all made yet: its first gateway's address, never null while it serves)
    serving = [_serving(p, s, facts.link) for p, s in zip(planned, sites, strict=True)]
    # while an address or gateway is still to be made the final document is unknown, and so differs from any stored
    final = membership_of(facts.link, planned) if all(p.known for p in planned) else None
    name = naming.membership_parameter(facts.link)
    out = []
    for s in sites:
        current = s.facts.membership(facts.link)
        kept = [PlannedSite.of(e) for e in current.sites if e.site in removed] if current else []
        seed = membership_of(facts.link, [*serving, *kept])
        if current is None or set(current.site_names()) != set(seed.site_names()) or _unnamed(current, serving):
            out.append(Change(s.name, s.name, Phase.SEED, Action.UPDATE, Kind.MEMBERSHIP, name,
                              (("entries", tuple([*serving, *kept])), ("placeholder", True)),
                              "record the sites before making anything"))
            current = seed
        switched = [*planned, *kept]
        doc = membership_of(facts.link, switched) if all(p.known for p in switched) else None
        if doc is None or current != doc:
            out.append(Change(s.name, s.name, Phase.MEMBERSHIP, Action.UPDATE, Kind.MEMBERSHIP, name,
                              (("entries", tuple(switched)),), "the link's sites and the gateway serving each"))
            current = doc
        if kept or current != final:
            out.append(Change(s.name, s.name, Phase.PRUNE, Action.UPDATE, Kind.MEMBERSHIP, name,
                              (("entries", tuple(planned)),), "the link's sites for the gateways"))
    return out


def _serving(planned: PlannedSite, site: Site, link: str) -> PlannedSite:
    """What a seed lists of ``site`` while ``planned`` is not all made: a site with two gateways whose replacement
    is still to be launched keeps its stored entry (the two that serve now, the active named)."""
    if planned.ha and planned.known:
        return planned
    stored = serving_entry(site.facts, link) if planned.ha else None
    if stored is not None:
        return stored
    return replace(planned, gateway=site.eip.instance_id if site.eip else None,
                   eip=site.eip.public_ip if site.eip else Ref("eip-ip", site.name))


def _planned_site(spec: LinkSpec, s: Site, gateway: str | Ref | None,
                  pair: tuple[Gateway, Gateway] | None, link: str) -> PlannedSite:
    if pair is not None:
        kept = sorted(g.kept_eni for g in pair if g.kept_eni)
        return planned_pair(s.name, s.cidrs, spec.port, pair, route_owner(s.facts, link, kept))
    return PlannedSite(s.name, s.name, s.eip.public_ip if s.eip else Ref("eip-ip", s.name), s.cidrs, spec.port,
                       gateway)


def _unnamed(current: Membership, serving: list[PlannedSite]) -> bool:
    """Whether ``current`` fails to name a site's serving gateway (a document of a linker before per-instance
    keys): peers would then take the site key a successor publishes while booting."""
    return any(p.gateway is not None and (e := current.site(p.site)) is not None and e.gateway != p.gateway
               for p in serving)
