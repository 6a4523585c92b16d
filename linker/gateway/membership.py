"""The gateway's peers from the link's membership (``linker.contract.Membership``) and its peers' public keys.

The controller writes the membership where every gateway can read it; each gateway's agent turns it, plus the public
keys its peers published, into its own peer list. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from linker.contract import Membership, SiteEntry
from linker.gateway.actives import site_allowed_ips
from linker.gateway.wgctl import PeerSpec

PERSISTENT_KEEPALIVE = 25  # keeps sessions fresh so handshake age is a liveness signal


def desired_peers(membership: Membership, own_site: str, public_keys: dict[str, bytes],
                  actives: Mapping[str, str] | None = None) -> list[PeerSpec]:
    """The peers the gateway of ``own_site`` should have: every other site whose key and EIP are known.

    A remote site with two gateways (docs/HA.md) is two peers, one per gateway whose own key (``public_keys`` by
    instance id), EIP and tunnel address are known: each holds its gateway's tunnel address as a host route, and
    the site's CIDRs go to the peer of ``actives[site]`` (the active gateway as last announced or recorded; the
    lower instance id before any). Both keep their sessions warm with a persistent keepalive."""
    peers = []
    for entry in membership.peers_of(own_site):
        if entry.ha and entry.gateways:
            peers += _ha_peers(entry, public_keys, (actives or {}).get(entry.site))
            continue
        key = public_keys.get(entry.site)
        endpoint = entry.endpoint()
        if key is None or endpoint is None:
            continue  # that gateway has not published its key yet: it will appear on a later poll
        peers.append(PeerSpec(key, endpoint, entry.cidrs, PERSISTENT_KEEPALIVE))
    return peers


def _ha_peers(entry: SiteEntry, public_keys: dict[str, bytes], active: str | None) -> list[PeerSpec]:
    ready = {g.instance: g for g in entry.gateways
             if g.tunnel and g.endpoint(entry.port) and g.instance in public_keys}
    allowed = site_allowed_ips(entry.cidrs, {i: g.tunnel for i, g in ready.items() if g.tunnel}, active)
    return [PeerSpec(public_keys[i], g.endpoint(entry.port), allowed[i], PERSISTENT_KEEPALIVE)
            for i, g in sorted(ready.items())]
