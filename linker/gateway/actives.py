"""Which gateway of each remote site gets that site's CIDRs: the receiving side of failover (docs/HA.md, rule 7).

``RemoteActives`` is sans-I/O: the agent hands it the announcements it received on its tunnel socket (with the
datagram's source address) and the active records it read from SSM (the slow path), and it answers with the peer
changes to make (``MoveSiteCidrs``) or why it dropped the input (``Ignored``, for a debug log line). Not
thread-safe: one agent loop owns it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from linker.gateway.failover_wire import Announcement


@dataclass(frozen=True)
class MoveSiteCidrs:
    """Put ``site``'s CIDRs in the AllowedIPs of ``instance``'s peer (and out of its sibling's): a local change."""

    site: str
    instance: str
    epoch: int


@dataclass(frozen=True)
class Ignored:
    """An input that changed nothing, and why (log it at debug, with the site and the source)."""

    site: str
    reason: str


@dataclass(frozen=True)
class _Applied:
    instance: str
    epoch: int


def _normal(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


class RemoteActives:
    """The applied (instance, epoch) of each remote site, and the rules that change it.

    ``gateways`` is the membership's view: remote site -> {instance id: tunnel address}. A site's entry is forgotten
    when its holder is no longer one of the site's gateways (``set_gateways``), so that a site whose record was
    deleted and made again (versions restart at 1) is accepted again.
    """

    def __init__(self, link: str, gateways: Mapping[str, Mapping[str, str]]) -> None:
        self.link = link
        self._gateways: dict[str, dict[str, str]] = {}
        self._applied: dict[str, _Applied] = {}
        self.set_gateways(gateways)

    def set_gateways(self, gateways: Mapping[str, Mapping[str, str]]) -> None:
        """Replace the membership's view (after each membership read)."""
        self._gateways = {site: {i: _normal(a) or a for i, a in gws.items()} for site, gws in gateways.items()}
        self._applied = {site: a for site, a in self._applied.items()
                         if a.instance in self._gateways.get(site, {})}

    def active(self, site: str) -> tuple[str, int] | None:
        """(instance, epoch) applied for ``site``; None before any announcement or record was applied."""
        applied = self._applied.get(site)
        return (applied.instance, applied.epoch) if applied else None

    def announced(self, announcement: Announcement, source: str) -> MoveSiteCidrs | Ignored:
        """An announcement that arrived through the tunnel from ``source`` (the datagram's source address)."""
        site = announcement.site
        if announcement.link != self.link:
            return Ignored(site, f"an announcement for link {announcement.link!r}, not {self.link!r}")
        gateways = self._gateways.get(site)
        if gateways is None:
            return Ignored(site, "an announcement for a site that is not a remote site of this link")
        expected = gateways.get(announcement.instance)
        if expected is None:
            return Ignored(site, f"an announcement for {announcement.instance}, not a gateway of {site}")
        if _normal(source) is None or _normal(source) != expected:
            return Ignored(site, f"an announcement for {announcement.instance} from {source}, not from its tunnel "
                                 f"address {expected}")
        return self._apply(site, announcement.instance, announcement.epoch)

    def recorded(self, site: str, instance: str, epoch: int) -> MoveSiteCidrs | Ignored:
        """The site's active record as read from SSM (the slow path): the same epoch rule, no source to check."""
        if instance not in self._gateways.get(site, {}):
            return Ignored(site, f"the active record names {instance}, not a gateway of {site}")
        return self._apply(site, instance, epoch)

    def _apply(self, site: str, instance: str, epoch: int) -> MoveSiteCidrs | Ignored:
        applied = self._applied.get(site)
        if applied is not None and epoch <= applied.epoch:
            what = "a repeat" if (instance, epoch) == (applied.instance, applied.epoch) else "stale"
            return Ignored(site, f"epoch {epoch} of {instance} is {what} (applied: epoch {applied.epoch} of "
                                 f"{applied.instance})")
        self._applied[site] = _Applied(instance, epoch)
        return MoveSiteCidrs(site, instance, epoch)


def site_allowed_ips(cidrs: tuple[str, ...], gateways: Mapping[str, str],
                     active: str | None) -> dict[str, tuple[str, ...]]:
    """The AllowedIPs of the peer of each gateway of one remote site (instance -> networks): every peer has its
    gateway's tunnel address as a host route, and the active's peer also has the site's ``cidrs``. An ``active``
    that is None or not one of ``gateways`` (nothing applied yet) falls back to the lower instance id, where the
    controller points a new site's routes (docs/HA.md, rule 3). Longest-prefix match keeps a standby's host route
    apart from the CIDRs that contain it."""
    if not gateways:
        return {}
    holder = active if active in gateways else min(gateways)
    out = {}
    for instance, address in gateways.items():
        host = ipaddress.ip_address(address)
        own = (f"{host}/{host.max_prefixlen}",)
        out[instance] = own + tuple(cidrs) if instance == holder else own
    return out
