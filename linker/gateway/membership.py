"""The gateway's peers from the link's membership (``linker.contract.Membership``) and its peers' public keys.

The controller writes the membership where every gateway can read it; each gateway's agent turns it, plus the public
keys its peers published, into its own peer list. Pure.
"""

from __future__ import annotations

from linker.contract import Membership
from linker.gateway.wgctl import PeerSpec

PERSISTENT_KEEPALIVE = 25  # keeps sessions fresh so handshake age is a liveness signal


def desired_peers(membership: Membership, own_site: str, public_keys: dict[str, bytes]) -> list[PeerSpec]:
    """The peers the gateway of ``own_site`` should have: every other site whose key and EIP are known."""
    peers = []
    for entry in membership.peers_of(own_site):
        key = public_keys.get(entry.site)
        endpoint = entry.endpoint()
        if key is None or endpoint is None:
            continue  # that gateway has not published its key yet: it will appear on a later poll
        peers.append(PeerSpec(key, endpoint, entry.cidrs, PERSISTENT_KEEPALIVE))
    return peers
