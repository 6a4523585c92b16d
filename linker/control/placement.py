"""Where a site's gateway goes: its VPC, a public subnet, the route tables it serves. Planning decisions.

Pure functions of the facts (``linker.control.facts.model``), so the planner's tests are data. Part of planning:
``plan`` calls them; a refusal is a SpecError that says how to choose instead.
"""

from __future__ import annotations

from linker import naming
from linker.control.facts.model import RegionFacts, RouteTable, Subnet, Vpc
from linker.errors import SpecError


def choose_vpc(rf: RegionFacts, requested: str | None) -> tuple[Vpc, str]:
    """The site's VPC and why: ``--vpc``, else the one tagged ``linker:site``, else the only non-default VPC,
    else the default VPC. Raises SpecError when the choice is missing or ambiguous."""
    if requested:
        vpc = next((v for v in rf.vpcs if v.id == requested), None)
        if vpc is None:
            raise SpecError(f"{rf.region}: VPC {requested} does not exist",
                            fix=f"list the region's VPCs with: aws ec2 describe-vpcs --region {rf.region}")
        return vpc, "--vpc"
    tagged = [v for v in rf.vpcs if naming.TAG_SITE in dict(v.tags)]
    if len(tagged) == 1:
        return tagged[0], f"tagged {naming.TAG_SITE}"
    if len(tagged) > 1:
        raise SpecError(f"{rf.region}: several VPCs are tagged {naming.TAG_SITE} ({', '.join(v.id for v in tagged)})",
                        fix=f"choose one with --vpc {rf.region}=vpc-...")
    custom = [v for v in rf.vpcs if not v.is_default]
    if len(custom) == 1:
        return custom[0], "the region's only non-default VPC"
    if len(custom) > 1:
        raise SpecError(f"{rf.region}: several VPCs and none tagged {naming.TAG_SITE} "
                        f"({', '.join(sorted(v.id for v in custom))})",
                        fix=f"choose one with --vpc {rf.region}=vpc-... or tag it {naming.TAG_SITE}={rf.region}")
    default = next((v for v in rf.vpcs if v.is_default), None)
    if default is None:
        raise SpecError(f"{rf.region}: there is no VPC", fix="create one, or drop the region from the link")
    return default, "the default VPC"


def vpc_route_tables(rf: RegionFacts, vpc_id: str) -> tuple[RouteTable, ...]:
    """Route tables in use in the VPC: those associated with a subnet, and the main table."""
    return tuple(t for t in rf.route_tables if t.vpc_id == vpc_id and (t.is_main or t.subnet_ids))


def public_subnets(rf: RegionFacts, vpc_id: str) -> list[Subnet]:
    """Subnets whose route table (their own, else the VPC's main table) send 0.0.0.0/0 to an internet gateway."""
    main = next((t for t in rf.route_tables if t.vpc_id == vpc_id and t.is_main), None)
    out = []
    for subnet in sorted((s for s in rf.subnets if s.vpc_id == vpc_id), key=lambda s: (s.availability_zone, s.id)):
        table = next((t for t in rf.route_tables if subnet.id in t.subnet_ids), main)
        default = table.route("0.0.0.0/0") if table else None
        if default is not None and default.target.startswith("igw-"):
            out.append(subnet)
    return out


def zone_of(rf: RegionFacts, subnet_id: str | None) -> str:
    """The availability zone of ``subnet_id`` ("" when unknown)."""
    return next((s.availability_zone for s in rf.subnets if s.id == subnet_id), "")


def second_subnet(rf: RegionFacts, vpc_id: str, first_zone: str) -> Subnet:
    """The public subnet of a site's second gateway (``--ha``): the first in a zone other than ``first_zone`` that
    offers the gateway's instance type. Raises SpecError naming the VPC and the fix when there is none."""
    offered = [s for s in public_subnets(rf, vpc_id) if rf.offered_azs is None or s.availability_zone in rf.offered_azs]
    other = [s for s in offered if s.availability_zone != first_zone]
    if other:
        return other[0]
    zones = ", ".join(sorted({s.availability_zone for s in offered})) or "none"
    raise SpecError(f"{rf.region}: --ha puts a site's two gateways in two availability zones, and VPC {vpc_id}'s "
                    f"public subnets that can run the gateway are in one zone only ({zones})",
                    fix=f"add a public subnet of {vpc_id} in another availability zone (its route table sending "
                        "0.0.0.0/0 to the VPC's internet gateway), or choose another VPC with "
                        f"--vpc {rf.region}=vpc-..., or run without --ha")


def public_subnet(rf: RegionFacts, vpc_id: str) -> str | None:
    """The first public subnet in an availability zone that offers the gateway's instance type."""
    offered = [s for s in public_subnets(rf, vpc_id) if rf.offered_azs is None or s.availability_zone in rf.offered_azs]
    return offered[0].id if offered else None
