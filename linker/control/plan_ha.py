"""A site's second gateway (``--ha``, docs/HA.md): planned beside the first, or removed without ``--ha``. Pure.

The first gateway of a site is the one a site without ``--ha`` has: its instance and EIP carry no slot tag, so a
site gains or loses its second gateway without touching its first. The second's instance and EIP carry
``linker:slot=2``; it runs in a public subnet of another availability zone, from the same launch configuration,
security group and role. ``plan`` plans the first from a view of the facts without the second (``first_only``)
and the second here from the view without the first (``second_only``), so that each keeps, replaces and retires
its own instance as rollout.py says. A site whose active gateway is due is rolled (``rolling_hold``,
``plan_handover``): the active is kept in this pass, the standby replaced, then a planned switch. Values are
immutable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from linker import naming
from linker.control.changes import Action, Change, Kind, Lower, Phase, Ref
from linker.control.facts.model import Eip, Instance, RegionFacts, Tags
from linker.control.membership_doc import PlannedGateway, PlannedSite
from linker.control.package import Package
from linker.control.placement import second_subnet, zone_of
from linker.control.render import GatewayInputs, user_data
from linker.control.rollout import Rollout, instance_config, keep_fixes, kept_instance, launch_tags, ready
from linker.errors import CloudError
from linker.spec import LinkSpec


def second_key(site: str) -> str:
    """The key of the references a site's second gateway makes (``Ref(kind, second_key(site))``)."""
    return f"{site}/{naming.SECOND_SLOT}"


def is_second(tags: Tags) -> bool:
    return dict(tags).get(naming.TAG_SLOT) == naming.SECOND_SLOT


def first_only(rf: RegionFacts) -> RegionFacts:
    """The facts as the first gateway's planning sees them: without the second gateway's instances and EIPs."""
    return replace(rf, instances=tuple(i for i in rf.instances if not is_second(i.tags)),
                   eips=tuple(e for e in rf.eips if not is_second(e.tags)))


def second_only(rf: RegionFacts) -> RegionFacts:
    """The facts as the second gateway's planning sees them: only its instances and EIPs."""
    return replace(rf, instances=tuple(i for i in rf.instances if is_second(i.tags)),
                   eips=tuple(e for e in rf.eips if is_second(e.tags)))


def own_eip(rf: RegionFacts, site: str) -> Eip | None:
    """The site's EIP in ``rf`` (a view of one slot): an associated one first."""
    own = sorted((e for e in rf.eips if dict(e.tags).get(naming.TAG_SITE) == site),
                 key=lambda e: (not e.association_id, e.allocation_id))
    return own[0] if own else None


def lower(*pairs: tuple[Any, Any]) -> Any:
    """The value of the lower instance id among ``pairs`` ((instance, value)); a ``Lower`` while one is a Ref."""
    if any(isinstance(x, Ref) for pair in pairs for x in pair):
        return Lower(tuple(pairs))
    return min(pairs)[1]


@dataclass(frozen=True)
class Gateway:
    """One gateway of a site as it will be once the plan is made: what the routes, the membership and the other
    slot's planning need of it."""

    instance: str | Ref
    eni: str | Ref
    kept: Instance | None  # the instance kept as it is (None: one is launched)
    entry: PlannedGateway

    @property
    def kept_eni(self) -> str | None:
        return self.kept.eni_id if self.kept else None


def gateway_of(rf: RegionFacts, key: str, kept: Instance | None, subnet: str, eip: Eip | None) -> Gateway:
    """The gateway of a slot: ``kept``, else the one launched into ``subnet`` (its references under ``key``)."""
    instance: str | Ref = kept.id if kept else Ref("instance", key)
    eni: str | Ref = (kept.eni_id or "") if kept else Ref("eni", key)
    zone = zone_of(rf, kept.subnet_id if kept else subnet)
    address = eip.public_ip if eip else Ref("eip-ip", key)
    tunnel: str | Ref | None = (kept.private_ip if kept else Ref("tunnel", key))
    return Gateway(instance, eni, kept, PlannedGateway(instance, zone, address, tunnel))


def plan_pair(spec: LinkSpec, inputs: GatewayInputs, rf: RegionFacts, vpc_id: str, first_subnet: str,
              first_eip: Eip | None, group: str | Ref, link: str, package: Package,
              rollout: Rollout) -> tuple[list[Change], Gateway, Gateway]:
    """The second gateway's changes, and the site's two gateways as they will be (first, second). The first is
    the one ``plan_site`` keeps or launches (the same choice, made again here: it is pure); the second goes to
    another zone (``second_subnet``: SpecError when the VPC has public subnets in one zone only)."""
    config = instance_config(spec, inputs)
    keep = kept_instance(first_only(rf), link, rf.region, config, vpc_id, spec.instance_type, package, rollout)
    first = gateway_of(rf, rf.region, keep, first_subnet, first_eip)
    subnet = second_subnet(rf, vpc_id, first.entry.az)
    changes, second = plan_second(spec, inputs, rf, vpc_id, subnet.id, first.entry.az, group, link, package, rollout)
    return changes, first, second


def route_owner(rf: RegionFacts, link: str, enis: Iterable[str]) -> str | None:
    """The one of ``enis`` (the site's kept gateways') that every route linker made for ``link`` in the region
    points at: the active (docs/HA.md, the route tables are the arbiter); None when there is none, or a mix."""
    held = {r.eni for t in rf.route_tables for cidr in t.linker_routes(link) if (r := t.route(cidr)) is not None}
    return next((e for e in enis if held == {e}), None)


def planned_pair(site: str, cidrs: tuple[str, ...], port: int, pair: tuple[Gateway, Gateway],
                 owner: str | None = None) -> PlannedSite:
    """The membership entry of a site with two gateways: both listed, and named as the site's own gateway and
    address the one whose ENI is ``owner`` (the routes' target), else the lower instance id (the one the routes
    are made to point at): what an agent older than HA peers with."""
    one, two = (g.entry for g in pair)
    held = next((g.entry for g in pair if owner is not None and g.kept_eni == owner), None)
    if held is not None:
        return PlannedSite(site, site, held.eip, cidrs, port, held.instance, True, (one, two))
    return PlannedSite(site, site, lower((one.instance, one.eip), (two.instance, two.eip)), cidrs, port,
                       lower((one.instance, one.instance), (two.instance, two.instance)), True, (one, two))


def plan_second(spec: LinkSpec, inputs: GatewayInputs, rf: RegionFacts, vpc_id: str, subnet: str, first_zone: str,
                group: str | Ref, link: str, package: Package, rollout: Rollout) -> tuple[list[Change], Gateway]:
    """The changes that give the site ``rf`` describes its second gateway in ``subnet`` (another zone than
    ``first_zone``), and that gateway; make before break as the first's (linker.control.rollout)."""
    name, key, view = rf.region, second_key(rf.region), second_only(rf)
    tags = (("tags", tuple(sorted({**naming.base_tags(link, name), naming.TAG_SLOT: naming.SECOND_SLOT}.items()))),)
    out: list[Change] = []

    def add(phase: Phase, action: Action, kind: Kind, target: str, reason: str, *params: tuple[str, object]) -> None:
        out.append(Change(name, name, phase, action, kind, target, tuple(params), reason))

    eip = own_eip(view, name)
    label = f"{naming.resource_name(link, name)}-{naming.SECOND_SLOT}"
    if eip is None:
        add(Phase.ADDRESS, Action.CREATE, Kind.EIP, label, "the second gateway's public endpoint", ("ref", key), *tags)
    config = instance_config(spec, inputs)
    keep = kept_instance(view, link, name, config, vpc_id, spec.instance_type, package, rollout)
    if keep is not None and zone_of(rf, keep.subnet_id) == first_zone and keep.id not in rollout.hold:
        keep = None  # both gateways in one zone would fall together: the second moves to another
    if keep is None:
        if package.key not in (rf.bucket.keys if rf.bucket else ()):
            add(Phase.FOUNDATION, Action.CREATE, Kind.PACKAGE, rf.bucket.name if rf.bucket else "",
                f"linker {package.filename}", ("key", package.key))
        if rf.ami is None:
            raise CloudError(f"{name}: no Amazon Linux 2023 AMI found in the public SSM parameters",
                             fix="check that the region is enabled for the account")
        add(Phase.GATEWAY, Action.CREATE, Kind.INSTANCE, label, "the site's second gateway, in another zone",
            ("ami", rf.ami), ("instance_type", spec.instance_type), ("subnet", subnet), ("group", group),
            ("profile", naming.resource_name(link, name)), ("config", config),
            ("pin", tuple(sorted(launch_tags(package).items()))), ("user_data", user_data(inputs)), ("ref", key),
            *tags)
    else:
        for action, kind, why in keep_fixes(name, keep, package, rollout):
            add(Phase.GATEWAY, action, kind, keep.id, why)
    gateway = gateway_of(rf, key, keep, subnet, eip)
    holder = eip.instance_id if eip else None
    serving = next((i for i in view.instances if i.id == holder and i.state == "running"), None)
    if serving is not None and (keep is None or (serving.id != keep.id and not ready(rf, link, name, keep.id))):
        add(Phase.GATEWAY, Action.UPDATE, Kind.INSTANCE_READY, str(gateway.instance),
            f"{serving.id} serves until its successor is ready", ("instance", gateway.instance),
            ("serving", serving.id))
    if eip is None or keep is None or eip.instance_id != keep.id:
        add(Phase.SWITCH, Action.UPDATE, Kind.EIP_ASSOCIATION, str(eip.allocation_id if eip else label),
            "the second gateway's public endpoint",
            ("allocation", eip.allocation_id if eip else Ref("eip-allocation", key)), ("instance", gateway.instance))
    for old in (i.id for i in view.instances if keep is None or i.id != keep.id):
        add(Phase.CLEANUP, Action.DELETE, Kind.INSTANCE, old, "replaced by a gateway with the current configuration")
    return out, gateway


def serving(view: RegionFacts, site: str) -> Instance | None:
    """The running instance holding the site's EIP in ``view`` (a view of one slot): the slot's serving gateway."""
    eip = own_eip(view, site)
    return next((i for i in view.instances if eip is not None and i.id == eip.instance_id and i.state == "running"),
                None)


def rolling_hold(spec: LinkSpec, inputs: GatewayInputs, rf: RegionFacts, vpc_id: str, link: str, package: Package,
                 rollout: Rollout) -> Rollout:
    """``rollout`` holding the site's active gateway (the one its routes point at) when it is due for replacement:
    it is kept as it is in this pass while the standby is replaced, then the standby takes over
    (``plan_handover``) and the next pass replaces the old active as a standby (docs/HA.md, rolling replacement).
    ``rollout`` itself when the active is not due, or when the site has no two serving gateways or no owner of its
    routes (a first setup, a half-finished move): each slot is then planned on its own."""
    views = (first_only(rf), second_only(rf))
    now = [serving(view, rf.region) for view in views]
    enis = [i.eni_id for i in now if i is not None and i.eni_id]
    owner = route_owner(rf, link, enis) if len(enis) == 2 else None
    held = [(view, i) for view, i in zip(views, now, strict=True) if i is not None and i.eni_id == owner]
    if owner is None or not held:
        return rollout
    view, active = held[0]
    keep = kept_instance(view, link, rf.region, instance_config(spec, inputs), vpc_id, spec.instance_type, package,
                         rollout)
    if keep is not None and keep.id == active.id:
        return rollout
    return replace(rollout, hold=rollout.hold | {active.id})


def plan_handover(rf: RegionFacts, link: str, pair: tuple[Gateway, Gateway], rollout: Rollout) -> list[Change]:
    """The planned switch from the active ``rollout`` holds to its sibling in ``pair`` (kept, or launched in this
    pass), after everything else of the pass (``Phase.HANDOVER``); and a note that the old active is replaced next.
    Nothing when no gateway of ``pair`` is held."""
    held = next((g.kept for g in pair if g.kept is not None and g.kept.id in rollout.hold), None)
    if held is None:
        return []
    to = next(g.instance for g in pair if g.kept is None or g.kept.id != held.id)
    name = rf.region
    return [Change(name, name, Phase.HANDOVER, Action.UPDATE, Kind.ACTIVE_SWITCH, naming.switch_parameter(link, name),
                   (("to", to), ("from", held.id), ("record", naming.active_parameter(link, name))),
                   f"planned switch: {to} takes over from {held.id}, whose replacement is due"),
            Change(name, name, Phase.HANDOVER, Action.NOTE, Kind.ROLLING, held.id, (("after", to),),
                   f"{name}: the active gateway {held.id} is replaced once {to} took over from it (a planned switch); "
                   "`linker up` plans that next, in the same run, as a standby's replacement")]


def serving_entry(rf: RegionFacts, link: str) -> PlannedSite | None:
    """The site's entry in the membership stored in its region, when it lists two gateways: what a seed keeps
    while a gateway of the site is still to be launched (the two that serve now, the active named)."""
    current = rf.membership(link)
    entry = current.site(rf.region) if current is not None else None
    return PlannedSite.of(entry) if entry is not None and entry.ha and len(entry.gateways) == 2 else None


def route_table_tags(rf: RegionFacts, tables: tuple[str, ...], link: str, ha: bool) -> list[Change]:
    """Tag ``tables`` (those the site's routes are in) for the site's gateways when it has two (``ha``), so that
    they may move its routes (their role's condition); untag every table of the region otherwise."""
    name, key, out = rf.region, naming.route_table_tag(link), []
    for table in rf.route_tables:
        wanted = ha and table.id in tables
        has = dict(table.tags).get(key)
        if wanted and has != name:
            out.append(Change(name, name, Phase.SWITCH, Action.UPDATE, Kind.ROUTE_TABLE_TAG, table.id,
                              (("tag", key),), "the site's gateways may move its routes here"))
        elif not wanted and has is not None:
            out.append(Change(name, name, Phase.CLEANUP, Action.DELETE, Kind.ROUTE_TABLE_TAG, table.id,
                              (("tag", key),), "no longer a site with two gateways"))
    return out


def remove_second(rf: RegionFacts, link: str) -> list[Change]:
    """The changes that take a site back to one gateway (``up`` without ``--ha``): the second's instances, once
    the routes moved to the first, then its EIP and the records only a site with two has. Its own records under
    ``gateways/<instance>/`` go with the first's planning (``rollout.gateway_records``)."""
    name, view, out = rf.region, second_only(rf), []

    def add(kind: Kind, target: str, reason: str, *params: tuple[str, object]) -> None:
        out.append(Change(name, name, Phase.CLEANUP, Action.DELETE, kind, target, tuple(params), reason))

    live = [i.id for i in view.instances if i.state != "terminated"]
    for instance in live:
        add(Kind.INSTANCE, instance, "the site's second gateway (no --ha)")
    if live:
        add(Kind.INSTANCE_TERMINATED, ",".join(live), "its address is released next", ("instances", tuple(live)))
    for eip in view.eips:
        add(Kind.EIP, eip.allocation_id, "the second gateway's public endpoint (no --ha)",
            ("association", eip.association_id))
    for record in (naming.active_parameter(link, name), naming.switch_parameter(link, name)):
        if rf.parameter(record) is not None:
            add(Kind.PARAMETER, record, "only a site with two gateways has it")
    return out
