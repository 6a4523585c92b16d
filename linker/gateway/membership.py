"""The link's membership: which sites exist, where their gateways are, what they route. Pure data.

The controller writes it (JSON) where every gateway can read it; each gateway's agent turns it, plus the public
keys its peers published, into its own peer list. Nothing secret is in it.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from linker.gateway.wgctl import PeerSpec

SCHEMA_VERSION = 1
PERSISTENT_KEEPALIVE = 25  # keeps sessions fresh so handshake age is a liveness signal


class MembershipError(ValueError):
    """The membership document is malformed."""


@dataclass(frozen=True)
class SiteEntry:
    site: str
    region: str
    eip: str | None  # None until the controller allocated it
    cidrs: tuple[str, ...]
    port: int

    def endpoint(self) -> str | None:
        if not self.eip:
            return None
        host = f"[{self.eip}]" if ":" in self.eip else self.eip
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Membership:
    link: str
    sites: tuple[SiteEntry, ...]

    def to_json(self) -> str:
        return json.dumps({
            "schema": SCHEMA_VERSION,
            "link": self.link,
            "sites": [{"site": s.site, "region": s.region, "eip": s.eip, "cidrs": list(s.cidrs), "port": s.port}
                      for s in self.sites],
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Membership:
        try:
            doc = json.loads(text)
            if doc.get("schema") != SCHEMA_VERSION:
                raise MembershipError(f"membership schema {doc.get('schema')!r} is not {SCHEMA_VERSION}")
            sites = []
            for s in doc["sites"]:
                cidrs = tuple(str(ipaddress.ip_network(c)) for c in s["cidrs"])
                port = int(s["port"])
                if not 0 < port < 65536:
                    raise MembershipError(f"site {s['site']}: port {port} is out of range")
                if s.get("eip") is not None:
                    ipaddress.ip_address(s["eip"])
                sites.append(SiteEntry(str(s["site"]), str(s["region"]), s.get("eip"), cidrs, port))
            return cls(str(doc["link"]), tuple(sites))
        except MembershipError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise MembershipError(f"membership document is malformed: {exc}") from None

    def site(self, name: str) -> SiteEntry | None:
        return next((s for s in self.sites if s.site == name), None)

    def peers_of(self, own_site: str) -> list[SiteEntry]:
        return [s for s in self.sites if s.site != own_site]


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
