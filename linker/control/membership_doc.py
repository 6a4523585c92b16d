"""The membership document the controller writes to SSM in every region of the link.

Its format belongs to the gateway agent (``linker.gateway.membership.Membership``): it is built through that class so
the two sides cannot drift apart. An entry is (site, region, EIP or None, CIDRs, port).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from linker.contract import Membership, SiteEntry

Entry = tuple[str, str, Any, tuple[str, ...], int]


def membership_json(link: str, entries: Iterable[Entry], placeholder: bool = False) -> str:
    """The document for ``entries``, sites sorted. An EIP not yet known (a ``Ref``) is written as null when
    ``placeholder`` (gateways skip such a peer until it is known), else as its description, which never equals
    a stored document: the plan then knows the final document is still to be written."""
    sites = []
    for site, region, eip, cidrs, port in sorted(entries, key=lambda e: e[0]):
        if eip is not None and not isinstance(eip, str):
            eip = None if placeholder else str(eip)
        sites.append(SiteEntry(site, region, eip, tuple(cidrs), int(port)))
    return Membership(link, tuple(sites)).to_json()
