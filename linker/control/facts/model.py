"""The facts model: what exists in AWS that matters to one link, as plain frozen data. Pure; no AWS calls.

``readers`` fills it from AWS; the planner (``plan``, ``placement``) and ``teardown`` read it. Immutable values,
thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linker import naming
from linker.contract import Membership
from linker.errors import ContractError, ContractVersionError

Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Vpc:
    id: str
    cidrs: tuple[str, ...]
    is_default: bool
    tags: Tags = ()


@dataclass(frozen=True)
class Subnet:
    id: str
    vpc_id: str
    availability_zone: str


@dataclass(frozen=True)
class Route:
    destination: str
    target: str  # igw-..., eni-..., i-..., local, ...: the first target field AWS reports
    eni: str | None = None


@dataclass(frozen=True)
class RouteTable:
    id: str
    vpc_id: str
    is_main: bool
    subnet_ids: tuple[str, ...]
    routes: tuple[Route, ...]
    tags: Tags = ()

    def route(self, destination: str) -> Route | None:
        return next((r for r in self.routes if r.destination == destination), None)

    def linker_routes(self, link: str) -> dict[str, str]:
        """{cidr: site} of the routes linker recorded (by tag) as its own in this table, for ``link``."""
        return naming.routes_tagged(link, self.tags)


@dataclass(frozen=True)
class Eip:
    allocation_id: str
    public_ip: str
    association_id: str | None
    instance_id: str | None
    tags: Tags


@dataclass(frozen=True)
class Permission:
    """One ingress rule, flattened: protocol ('udp', '-1', ...), port range, source CIDR."""

    protocol: str
    from_port: int | None
    to_port: int | None
    cidr: str


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    vpc_id: str
    ingress: frozenset[Permission]
    tags: Tags
    egress: frozenset[Permission] = frozenset()


@dataclass(frozen=True)
class Instance:
    id: str
    state: str
    eni_id: str | None
    subnet_id: str | None
    instance_type: str
    source_dest_check: bool
    http_tokens: str
    launch_time: str
    tags: Tags
    private_ip: str | None = None  # its primary private IPv4: a gateway's tunnel address (docs/HA.md)

    @property
    def config(self) -> str | None:
        return dict(self.tags).get(naming.TAG_CONFIG)


@dataclass(frozen=True)
class IamFacts:
    """The site's IAM role and instance profile (IAM is global; names carry link and site)."""

    role_exists: bool = False
    role_tags: Tags = ()
    inline_policy: str | None = None  # canonical JSON of the inline policy, None when absent
    attached_policies: tuple[str, ...] = ()
    profile_exists: bool = False
    profile_roles: tuple[str, ...] = ()
    role_boundary: str | None = None  # the role's permissions boundary (ARN), None when it has none
    # linker's permissions boundary in this account and partition ("": not read, as in hand-made facts of tests)
    boundary_arn: str = ""
    boundary_exists: bool = True


@dataclass(frozen=True)
class Bucket:
    """The site's S3 bucket (``naming.bucket_name``): whether it exists, its tags, the wheels in it."""

    name: str
    exists: bool = False
    accessible: bool = True  # False: the name is taken by a bucket this account cannot read
    tags: Tags = ()
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegionFacts:
    region: str
    vpcs: tuple[Vpc, ...] = ()
    subnets: tuple[Subnet, ...] = ()
    route_tables: tuple[RouteTable, ...] = ()
    eips: tuple[Eip, ...] = ()
    security_groups: tuple[SecurityGroup, ...] = ()
    instances: tuple[Instance, ...] = ()
    iam: IamFacts = field(default_factory=IamFacts)
    parameters: tuple[tuple[str, str], ...] = ()  # the link's own SSM parameters here: (name, value)
    ami: str | None = None
    bucket: Bucket | None = None
    # the availability zones that offer the gateway's instance type; None: not looked up (not a gateway region)
    offered_azs: frozenset[str] | None = None
    # the CIDRs of each managed prefix list a route table here sends somewhere: (pl-id, cidrs)
    prefix_lists: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def parameter(self, name: str) -> str | None:
        return dict(self.parameters).get(name)

    def membership(self, link: str) -> Membership | None:
        """The link's membership document here; None when absent or malformed (``up`` writes it again).

        Raises ContractVersionError when a newer linker wrote it: this one must not overwrite or guess at it."""
        text = self.parameter(naming.membership_parameter(link))
        if text is None:
            return None
        try:
            return Membership.from_json(text)
        except ContractVersionError:
            raise
        except ContractError:
            return None

    def membership_sites(self, link: str) -> tuple[str, ...]:
        """The sites the membership document here names (none without a readable one)."""
        membership = self.membership(link)
        return membership.site_names() if membership else ()

    def _tagged(self) -> list[tuple[str, Tags]]:
        """(id, tags) of the link's tagged resources here."""
        out = [(e.allocation_id, e.tags) for e in self.eips] + [(g.id, g.tags) for g in self.security_groups]
        out += [(i.id, i.tags) for i in self.instances]
        if self.iam.role_exists:
            out.append((f"IAM role of {self.region}", self.iam.role_tags))
        if self.bucket is not None and self.bucket.exists:
            out.append((self.bucket.name, self.bucket.tags))
        return out

    def managed_by(self) -> set[str]:
        """Every ``linker:managed-by`` value on the link's resources here."""
        return {dict(tags).get(naming.TAG_MANAGED_BY, "") for _, tags in self._tagged()} - {""}

    def managed_by_terraform(self) -> tuple[str, ...]:
        """Ids of the link's resources here that carry ``linker:managed-by=terraform``."""
        return tuple(rid for rid, tags in self._tagged()
                     if dict(tags).get(naming.TAG_MANAGED_BY) == naming.MANAGED_BY_TERRAFORM)


@dataclass(frozen=True)
class LinkFacts:
    link: str
    regions: tuple[RegionFacts, ...]

    def region(self, name: str) -> RegionFacts:
        return next(r for r in self.regions if r.region == name)

    def known_sites(self) -> tuple[str, ...]:
        """Sites named in any region's membership document or owning a tagged resource."""
        sites: set[str] = set()
        for rf in self.regions:
            sites.update(rf.membership_sites(self.link))
            if has_link_resources(rf, self.link):
                sites.add(rf.region)
        return tuple(sorted(sites))


def has_link_resources(rf: RegionFacts, link: str) -> bool:
    """Whether the region holds anything of ``link`` besides its lock and its home record (the home region stays
    the home when the link leaves it)."""
    params = [n for n, _ in rf.parameters if n not in (naming.lock_parameter(link), naming.home_parameter(link))]
    return bool(rf.eips or rf.security_groups or rf.instances or rf.iam.role_exists or rf.iam.profile_exists
                or (rf.bucket is not None and rf.bucket.exists and rf.bucket.accessible) or params
                or any(t.linker_routes(link) for t in rf.route_tables))
