"""The membership document (``linker.contract.Membership``) as the controller plans and writes it.

The plan knows a site's public address only once its Elastic IP exists; until then the address is a ``Ref`` to
what an earlier phase allocates. ``PlannedSite`` is a site entry with such an address; ``membership_of`` turns
planned sites into the document, sites sorted by name. Pure; values are immutable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from linker.contract import STANDARD_TIER_BYTES, Membership, SiteEntry
from linker.control.changes import Ref
from linker.errors import SpecError

EipLookup = Callable[[Ref], "str | None"]


@dataclass(frozen=True)
class PlannedSite:
    """A site of the membership as planned: ``eip`` is an address, a ``Ref`` to one still to be made, or None;
    ``gateway`` the instance serving the site, a ``Ref`` to one still to be launched, or None."""

    site: str
    region: str
    eip: str | Ref | None
    cidrs: tuple[str, ...]
    port: int
    gateway: str | Ref | None = None

    @classmethod
    def of(cls, entry: SiteEntry) -> PlannedSite:
        return cls(entry.site, entry.region, entry.eip, entry.cidrs, entry.port, entry.gateway)

    @property
    def known(self) -> bool:
        """Whether the address and the gateway are settled (values, or none at all)."""
        return not isinstance(self.eip, Ref) and not isinstance(self.gateway, Ref)

    def entry(self, lookup: EipLookup) -> SiteEntry:
        """The contract's entry, a ``Ref`` resolved by ``lookup`` (None: written as null, gateways skip it)."""
        eip = lookup(self.eip) if isinstance(self.eip, Ref) else self.eip
        gateway = lookup(self.gateway) if isinstance(self.gateway, Ref) else self.gateway
        return SiteEntry(self.site, self.region, eip, tuple(self.cidrs), int(self.port), gateway)

    def to_dict(self) -> dict[str, Any]:
        """As the plan shows it (``--json``): an unknown address or gateway as its description."""
        return {"site": self.site, "region": self.region, "eip": None if self.eip is None else str(self.eip),
                "cidrs": list(self.cidrs), "port": self.port,
                "gateway": None if self.gateway is None else str(self.gateway)}


def unknown(_ref: Ref) -> None:
    """The lookup of a plan: no address made yet."""
    return None


def membership_of(link: str, sites: Iterable[PlannedSite], lookup: EipLookup = unknown) -> Membership:
    """The document of ``sites``, sorted by name; raises what ``lookup`` raises for a ``Ref`` it cannot resolve."""
    return Membership(link, tuple(s.entry(lookup) for s in sorted(sites, key=lambda s: s.site)))


def check_size(link: str, sites: Iterable[PlannedSite]) -> None:
    """SpecError when the document of ``sites`` (addresses not made yet counted at their longest) would not fit
    SSM's standard tier: about 30 sites with two CIDRs each; a 20-site link uses about 2.7 KB of its 4 KB."""
    planned = list(sites)
    text = membership_of(link, planned, lambda _ref: "255.255.255.255").to_json()
    if len(text.encode()) > STANDARD_TIER_BYTES:
        raise SpecError(f"link {link!r}: the membership document of {len(planned)} sites would be "
                        f"{len(text.encode())} bytes, over the {STANDARD_TIER_BYTES} bytes of an SSM parameter",
                        fix="split the sites into two links, or give the sites fewer CIDR blocks")
