"""What failover needs of the membership (docs/HA.md): this gateway's sibling, the witnesses, the link's gateways.

Pure and thread-safe (frozen values). ``ha_view`` is None for a site with one gateway, and whenever this agent is
not one of its site's two gateways (an old gateway being retired, an agent that does not know its instance): such
an agent decides nothing and behaves exactly as a single gateway's.
"""

from __future__ import annotations

from dataclasses import dataclass

from linker.contract import Membership


@dataclass(frozen=True)
class HaView:
    """``instance`` of ``site``, at ``address`` (its tunnel address: its primary private IPv4), whose other gateway
    is ``sibling`` at ``sibling_address``. ``remote`` is, for each remote site with two gateways, instance -> tunnel
    address of those whose address is known; ``gateways`` is the same for every site of the link with two
    gateways, this one included (whom the relayer answers)."""

    link: str
    site: str
    instance: str
    address: str
    sibling: str
    sibling_address: str
    remote: dict[str, dict[str, str]]
    gateways: dict[str, dict[str, str]]

    @property
    def witnesses(self) -> dict[str, str]:
        """Every remote gateway (instance -> tunnel address): each is asked to relay a probe of the sibling."""
        return {i: a for gws in self.remote.values() for i, a in gws.items()}


def _addresses(membership: Membership) -> dict[str, dict[str, str]]:
    return {s.site: {g.instance: g.tunnel for g in s.gateways if g.tunnel}
            for s in membership.sites if s.ha and s.gateways}


def remote_gateways(membership: Membership, own_site: str) -> dict[str, dict[str, str]]:
    """Remote site with two gateways -> {instance: tunnel address}: whose announcements this agent applies."""
    return {site: gws for site, gws in _addresses(membership).items() if site != own_site}


def ha_view(membership: Membership, site: str, instance: str) -> HaView | None:
    """The view of ``instance`` of ``site``; None unless the site has two gateways, this is one of them and both
    tunnel addresses are known."""
    entry = membership.site(site)
    if entry is None or not entry.ha or not instance:
        return None
    own = entry.gateway_entry(instance)
    others = [g for g in entry.gateways if g.instance != instance]
    if own is None or own.tunnel is None or len(others) != 1 or others[0].tunnel is None:
        return None
    gateways = _addresses(membership)
    return HaView(membership.link, site, instance, own.tunnel, others[0].instance, others[0].tunnel,
                  {s: g for s, g in gateways.items() if s != site}, gateways)
