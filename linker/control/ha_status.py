"""``linker status`` of a site with two gateways (docs/HA.md): each gateway, its role, and the site's last failover.

Pure: reads the facts ``status_link`` gathered (instances, addresses, the link's parameters) and the gateways'
own health reports (``naming.gateway_health_parameter``). Which gateway is active comes from the site's active
record, written by the gateway the routes have just moved to; a gateway's own report says what it last believed
(a dead gateway's last report still says "active"), so where the two disagree both are shown. Values are immutable
and thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from linker import naming
from linker.contract import FailoverRecord, GatewayHealth, active_record_instance
from linker.control.facts.model import RegionFacts
from linker.control.plan_ha import is_second
from linker.errors import ContractError


def ago(seconds: float) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 120 * 60:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


@dataclass(frozen=True)
class SiteGateway:
    """One gateway of a site with two: its instance, state and address (None when unknown), its own last report,
    and its role ("active" or "standby"; None when neither the record nor a report says)."""

    instance: str
    state: str | None
    eip: str | None
    health: GatewayHealth | None
    role: str | None


def _active(rf: RegionFacts, link: str) -> str | None:
    text = rf.parameter(naming.active_parameter(link, rf.region))
    try:
        return active_record_instance(text) if text else None
    except ContractError:
        return None  # a malformed record: the gateway it should name rewrites it (docs/HA.md rule 6)


def site_gateways(rf: RegionFacts, link: str,
                  parse: Callable[[str | None], GatewayHealth | None]) -> tuple[SiteGateway, ...] | None:
    """Each gateway of the site ``rf.region`` when it has two (the membership says so, or a second gateway
    exists); None for a site with one, which ``linker status`` shows as before. ``parse`` reads a health report
    (None: absent or unreadable)."""
    try:
        membership = rf.membership(link)
    except ContractError:  # a newer linker's document: the status it can show still shows
        membership = None
    entry = membership.site(rf.region) if membership else None
    listed = [g.instance for g in entry.gateways] if entry and entry.ha else []
    if not listed and not any(is_second(i.tags) for i in rf.instances):
        return None
    live = {i.id: i for i in rf.instances}
    ids = listed + sorted(i for i in live if i not in listed)  # a replacement not yet in the membership too
    active = _active(rf, link)
    site_report = parse(rf.parameter(naming.health_parameter(link, rf.region)))
    out = []
    for instance in ids:
        health = parse(rf.parameter(naming.gateway_health_parameter(link, rf.region, instance)))
        if health is None and site_report is not None and site_report.instance == instance:
            health = site_report  # an agent that publishes only the site's report
        eip = next((e.public_ip for e in rf.eips if e.instance_id == instance), None)
        if eip is None and entry is not None:
            eip = next((g.eip for g in entry.gateways if g.instance == instance), None)
        if active is not None:
            role = "active" if instance == active else "standby" if instance in listed else None
        else:
            role = health.role if health else None
        found = live.get(instance)
        out.append(SiteGateway(instance, found.state if found else None, eip, health, role))
    return tuple(out)


class _Gateway(Protocol):
    site: str
    ha: bool
    instance: str | None
    role: str | None
    health: GatewayHealth | None


@dataclass(frozen=True)
class SiteFailover:
    """A site with two gateways as ``linker status`` sums it up: the active gateway and the site's last failover
    (the newest a gateway reported), with the instance that took over."""

    site: str
    active: str | None
    record: FailoverRecord | None = None
    by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        last = None if self.record is None else {**self.record.to_dict(), "instance": self.by}
        return {"site": self.site, "active": self.active, "last_failover": last}

    def line(self, now: float) -> str:
        """``us-east-1: active i-b; last failover 3 min ago: i-b took over from i-a (planned switch), ...``"""
        head = f"{self.site}: active {self.active or 'unknown'}"
        r = self.record
        if r is None:
            return f"{head}; no failover reported"
        cut = "traffic cut not measured" if r.gap is None else f"traffic cut {r.gap:.1f} s"
        return (f"{head}; last failover {ago(now - r.at)}: {self.by or '?'} took over from "
                f"{r.previous or 'no gateway'} ({r.reason}), {cut}")


def site_failovers(gateways: Iterable[_Gateway]) -> list[SiteFailover]:
    """One summary per site with two gateways (``ha``), in the order the sites come."""
    sites: dict[str, list[_Gateway]] = {}
    for g in gateways:
        if g.ha:
            sites.setdefault(g.site, []).append(g)
    out = []
    for site, members in sites.items():
        active = next((g.instance for g in members if g.role == "active"), None)
        reported = [(g.health.last_failover, g.instance) for g in members
                    if g.health is not None and g.health.last_failover is not None]
        record, by = max(reported, key=lambda x: x[0].at) if reported else (None, None)
        out.append(SiteFailover(site, active, record, by))
    return out
