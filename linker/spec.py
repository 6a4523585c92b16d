"""The link spec: which regions, which VPCs, which port and instance type. Validation as pure functions.

A site is one region's end of the link; its name is the region name (``linker:site=<region>``). Everything here
is pure: the known region names are passed in, never fetched, so the checks are tested as data.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from linker import naming
from linker.errors import SpecError

DEFAULT_INSTANCE_TYPE = "t3.micro"
DEFAULT_VPC_CIDR = "172.31.0.0/16"  # every region's default VPC has this block
_LINK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")  # fits IAM names and SSM paths with room to spare
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_REGION_SHAPE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


@dataclass(frozen=True)
class LinkSpec:
    """What ``linker up`` was asked for. ``vpcs`` maps a region to the VPC chosen with ``--vpc``."""

    name: str
    regions: tuple[str, ...]
    port: int = naming.DEFAULT_PORT
    instance_type: str = DEFAULT_INSTANCE_TYPE
    vpcs: tuple[tuple[str, str], ...] = field(default=())
    # --override-covering-routes: the user accepts that linker's routes take peer CIDRs away from a less specific
    # route of another owner (a transit gateway, a peering, ...: see plan._plan_routes)
    override_covering_routes: bool = False
    # --ha: two gateways per site, in two availability zones (docs/HA.md)
    ha: bool = False

    def vpc_for(self, region: str) -> str | None:
        return dict(self.vpcs).get(region)


@dataclass(frozen=True)
class SiteCidrs:
    """A site and the CIDR blocks of its VPC, as the overlap check sees them."""

    site: str
    vpc_id: str
    cidrs: tuple[str, ...]


def validate_link_name(name: str) -> str:
    """Return ``name`` if it is a valid link name (lowercase letters, digits, '-', at most 24), else SpecError."""
    if not _LINK_NAME.match(name):
        raise SpecError(f"link name {name!r} is not valid",
                        fix="use 1-24 lowercase letters, digits or '-', starting with a letter or digit")
    return name


def validate_regions(regions: Sequence[str], known: Iterable[str]) -> tuple[str, ...]:
    """Check the regions of a link: at least two, no repeats, each a region AWS knows. Returns them in order."""
    known_set = set(known)
    if len(regions) < 2:
        raise SpecError("a link needs at least two regions", fix="for example: linker up us-east-1 eu-west-1")
    seen: set[str] = set()
    for region in regions:
        if region in seen:
            raise SpecError(f"region {region} is given twice", fix="name each region once")
        seen.add(region)
        if region not in known_set:
            close = sorted(r for r in known_set if r.split("-")[0] == region.split("-")[0])[:6]
            hint = f"known regions like it: {', '.join(close)}" if close else "see `aws ec2 describe-regions`"
            shape = "" if _REGION_SHAPE.match(region) else " (a region looks like us-east-1)"
            raise SpecError(f"unknown region {region!r}{shape}", fix=hint)
    return tuple(regions)


def parse_vpc_options(values: Iterable[str], regions: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Parse repeated ``--vpc REGION=vpc-...`` into sorted (region, vpc) pairs; each region must be in the link."""
    chosen: dict[str, str] = {}
    for value in values:
        region, sep, vpc = value.partition("=")
        region, vpc = region.strip(), vpc.strip()
        if not sep or not region or not vpc:
            raise SpecError(f"--vpc {value!r} is not REGION=VPC-ID", fix="for example: --vpc us-east-1=vpc-0abc12345")
        if not _VPC_ID.match(vpc):
            raise SpecError(f"--vpc {value!r}: {vpc!r} is not a VPC id", fix="VPC ids look like vpc-0abc12345")
        if region not in regions:
            raise SpecError(f"--vpc {value!r}: region {region} is not one of the link's regions ({', '.join(regions)})",
                            fix="add the region to the command or drop the --vpc option")
        if chosen.get(region, vpc) != vpc:
            raise SpecError(f"--vpc gives two VPCs for {region}", fix="give one --vpc per region")
        chosen[region] = vpc
    return tuple(sorted(chosen.items()))


def validate_port(port: int) -> int:
    if not 1 <= port <= 65535:
        raise SpecError(f"port {port} is out of range", fix="use a UDP port between 1 and 65535, default 51820")
    return port


def validate_instance_type(instance_type: str) -> str:
    if not _INSTANCE_TYPE.match(instance_type):
        raise SpecError(f"instance type {instance_type!r} is not valid", fix="for example: t3.micro or t4g.nano")
    return instance_type


def check_overlap(sites: Sequence[SiteCidrs]) -> None:
    """Refuse when two sites' VPC CIDR blocks overlap: routes between them would be ambiguous.

    Default VPCs all use 172.31.0.0/16, which is the usual cause; the message says so and suggests ``--vpc``.
    """
    for i, a in enumerate(sites):
        for b in sites[i + 1:]:
            for ca in a.cidrs:
                for cb in b.cidrs:
                    na, nb = ipaddress.ip_network(ca), ipaddress.ip_network(cb)
                    if na.version == nb.version and na.overlaps(nb):
                        both_default = DEFAULT_VPC_CIDR in (ca, cb)
                        why = (" Default VPCs are all 172.31.0.0/16, so two default VPCs can never be linked."
                               if both_default else "")
                        raise SpecError(
                            f"{a.site} ({a.vpc_id}, {ca}) and {b.site} ({b.vpc_id}, {cb}) overlap: "
                            f"traffic between them could not be routed.{why}",
                            fix=f"choose VPCs with distinct CIDRs: --vpc {a.site}=vpc-... --vpc {b.site}=vpc-...")


def gateway_architecture(instance_type: str) -> str:
    """``arm64`` for Graviton families (a 'g' after the generation digit: t4g, c7gn, m6gd; and a1, the first
    Graviton), else ``x86_64``."""
    family = instance_type.split(".")[0]
    return "arm64" if family == "a1" or re.match(r"^[a-z]+\d+g", family) else "x86_64"
