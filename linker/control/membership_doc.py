"""The membership document (``linker.contract.Membership``) as the controller plans and writes it.

The plan knows a site's public address only once its Elastic IP exists; until then the address is a ``Ref`` to
what an earlier phase allocates. ``PlannedSite`` is a site entry with such an address; ``membership_of`` turns
planned sites into the document, sites sorted by name. Pure; values are immutable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from linker.contract import STANDARD_TIER_BYTES, GatewayEntry, Membership, SiteEntry
from linker.control.changes import Lower, Ref
from linker.errors import SpecError

EipLookup = Callable[[Ref], "str | None"]
Planned = "str | Ref | Lower | None"
LONGEST = {"instance": "i-0123456789abcdef0", "eip-ip": "255.255.255.255", "tunnel": "255.255.255.255"}


@dataclass(frozen=True)
class PlannedGateway:
    """One gateway of a site with two, as planned: its instance, Elastic IP and tunnel address may be ``Ref``s to
    what an earlier phase makes (``linker.contract.GatewayEntry`` once resolved)."""

    instance: str | Ref
    az: str
    eip: str | Ref | None
    tunnel: str | Ref | None

    @classmethod
    def of(cls, entry: GatewayEntry) -> PlannedGateway:
        return cls(entry.instance, entry.az, entry.eip, entry.tunnel)

    @property
    def known(self) -> bool:
        return not any(_unsettled(v) for v in (self.instance, self.eip, self.tunnel))

    def entry(self, lookup: EipLookup) -> GatewayEntry | None:
        """The contract's entry; None while its instance is not known (a seed: the gateway is not listed yet)."""
        instance = _value(self.instance, lookup)
        if instance is None:
            return None
        return GatewayEntry(instance, self.az, _value(self.eip, lookup), _value(self.tunnel, lookup))

    def to_dict(self) -> dict[str, Any]:
        return {"instance": str(self.instance), "az": self.az, "eip": None if self.eip is None else str(self.eip),
                "tunnel": None if self.tunnel is None else str(self.tunnel)}


@dataclass(frozen=True)
class PlannedSite:
    """A site of the membership as planned: ``eip`` is an address, a ``Ref`` to one still to be made, or None;
    ``gateway`` the instance serving the site, a ``Ref`` to one still to be launched, or None."""

    site: str
    region: str
    eip: str | Ref | Lower | None  # Lower: the address of the site's gateway with the lower id (two gateways)
    cidrs: tuple[str, ...]
    port: int
    gateway: str | Ref | Lower | None = None
    ha: bool = False
    gateways: tuple[PlannedGateway, ...] = ()  # a site with two (``ha``), lower instance id first

    @classmethod
    def of(cls, entry: SiteEntry) -> PlannedSite:
        return cls(entry.site, entry.region, entry.eip, entry.cidrs, entry.port, entry.gateway, entry.ha,
                   tuple(PlannedGateway.of(g) for g in entry.gateways))

    @property
    def known(self) -> bool:
        """Whether the address and the gateway(s) are settled (values, or none at all)."""
        return not _unsettled(self.eip) and not _unsettled(self.gateway) and all(g.known for g in self.gateways)

    def entry(self, lookup: EipLookup) -> SiteEntry:
        """The contract's entry, a ``Ref`` resolved by ``lookup`` (None: written as null, gateways skip it)."""
        eip, gateway = _value(self.eip, lookup), _value(self.gateway, lookup)
        listed = [e for e in (g.entry(lookup) for g in self.gateways) if e is not None]
        return SiteEntry(self.site, self.region, eip, tuple(self.cidrs), int(self.port), gateway, self.ha,
                         tuple(sorted(listed, key=lambda e: e.instance)))

    def to_dict(self) -> dict[str, Any]:
        """As the plan shows it (``--json``): an unknown address or gateway as its description."""
        return {"site": self.site, "region": self.region, "eip": None if self.eip is None else str(self.eip),
                "cidrs": list(self.cidrs), "port": self.port,
                "gateway": None if self.gateway is None else str(self.gateway), "ha": self.ha,
                "gateways": [g.to_dict() for g in self.gateways]}


def _unsettled(value: object) -> bool:
    return isinstance(value, Ref) or (isinstance(value, Lower) and value.unresolved)


def _value(value: object, lookup: EipLookup) -> str | None:
    """A planned value resolved: a ``Ref`` through ``lookup``, a ``Lower`` through it part by part."""
    if isinstance(value, Ref):
        return lookup(value)
    if isinstance(value, Lower):
        return value.pick(lambda v: lookup(v) if isinstance(v, Ref) else v)  # type: ignore[no-any-return]
    return value  # type: ignore[return-value]


def unknown(_ref: Ref) -> None:
    """The lookup of a plan: no address made yet."""
    return None


def membership_of(link: str, sites: Iterable[PlannedSite], lookup: EipLookup = unknown) -> Membership:
    """The document of ``sites``, sorted by name; raises what ``lookup`` raises for a ``Ref`` it cannot resolve."""
    return Membership(link, tuple(s.entry(lookup) for s in sorted(sites, key=lambda s: s.site)))


def longest(ref: Ref) -> str:
    """A value not made yet at its longest: how ``check_size`` counts it."""
    return LONGEST.get(ref.kind, LONGEST["eip-ip"])


def check_size(link: str, sites: Iterable[PlannedSite]) -> None:
    """SpecError when the document of ``sites`` (values not made yet counted at their longest) would not fit
    SSM's standard tier: about 24 sites with one gateway and two CIDRs each, about 12 with two gateways (``--ha``:
    each gateway adds its instance, zone, address and tunnel address); tests/unit/test_document_sizes.py."""
    planned = list(sites)
    text = membership_of(link, planned, longest).to_json()
    if len(text.encode()) > STANDARD_TIER_BYTES:
        ha = sum(1 for s in planned if s.ha)
        which = f" ({ha} of them with two gateways)" if ha else ""
        raise SpecError(f"link {link!r}: the membership document of {len(planned)} sites{which} would be "
                        f"{len(text.encode())} bytes, over the {STANDARD_TIER_BYTES} bytes of an SSM parameter",
                        fix="split the sites into two links, or give the sites fewer CIDR blocks"
                            + (", or fewer sites two gateways" if ha else ""))
