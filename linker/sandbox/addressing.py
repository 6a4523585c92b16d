"""The sandbox's address plan and names: pure functions, so the layout is tested as data.

Public addresses are TEST-NET only (RFC 5737), each block with one job:

- 192.0.2.0/24 (TEST-NET-1): the sandbox's own services on its internet; the AWS API endpoint that gateways use.
- 198.51.100.0/24 (TEST-NET-2): the link between the internet and each VPC's internet gateway, a /30 per VPC.
- 203.0.113.0/24 (TEST-NET-3): public addresses (Elastic IPs), handed out by the embedded EC2 API itself.

VPC ``k`` (the k-th region the sandbox was asked for, from 0) is 10.(10k+10).0.0/16 with a public subnet .1.0/24
(the gateway's, routed to the internet gateway), a private subnet .2.0/24 (the workload host's, at .2.10) and a
second public subnet .3.0/24 in another availability zone (a ``--ha`` site's second gateway's, as a real VPC
built for high availability has).
As in AWS, the first four addresses and the last one of a subnet are reserved; the VPC router is at .1.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from linker.errors import SpecError

SERVICES = ipaddress.ip_network("192.0.2.0/24")
UPLINKS = ipaddress.ip_network("198.51.100.0/24")
PUBLIC = ipaddress.ip_network("203.0.113.0/24")
TEST_NETS = (SERVICES, UPLINKS, PUBLIC)
API_ADDRESS = "192.0.2.10"  # the embedded AWS endpoint as instances reach it, across the sandbox internet
API_PORT = 80
PUBLIC_POOL = tuple(str(PUBLIC.network_address + i) for i in range(10, 251))
MAX_SITES = 24  # 10.10/16 .. 10.240/16
RESERVED_HEAD, RESERVED_TAIL = 4, 1  # AWS reserves .0-.3 and the broadcast address of every subnet


@dataclass(frozen=True)
class VpcPlan:
    """Addresses of the sandbox VPC with index ``index``."""

    index: int

    @property
    def cidr(self) -> str:
        return f"10.{10 * self.index + 10}.0.0/16"

    @property
    def public_subnet(self) -> str:
        return f"10.{10 * self.index + 10}.1.0/24"

    @property
    def second_public_subnet(self) -> str:
        """A public subnet in a second availability zone (``--ha`` puts a site's second gateway there)."""
        return f"10.{10 * self.index + 10}.3.0/24"

    @property
    def private_subnet(self) -> str:
        return f"10.{10 * self.index + 10}.2.0/24"

    @property
    def workload_ip(self) -> str:
        return f"10.{10 * self.index + 10}.2.10"

    @property
    def uplink_internet(self) -> str:
        """The internet's side of the /30 to this VPC's internet gateway."""
        return str(UPLINKS.network_address + 4 * self.index + 1)

    @property
    def uplink_router(self) -> str:
        """The internet gateway's (VPC router's) side of that /30."""
        return str(UPLINKS.network_address + 4 * self.index + 2)


def vpc_plan(index: int) -> VpcPlan:
    if not 0 <= index < MAX_SITES:
        raise SpecError(f"the sandbox holds at most {MAX_SITES} regions", fix="link fewer regions in the sandbox")
    return VpcPlan(index)


def router_ip(subnet: str) -> str:
    """The VPC router's address in ``subnet`` (the first host address, as in AWS)."""
    return str(ipaddress.ip_network(subnet).network_address + 1)


def assign_indexes(existing: Mapping[str, int], regions: Sequence[str]) -> dict[str, int]:
    """Every region's VPC index: existing ones are kept, new regions take the lowest free indexes in order."""
    out = dict(existing)
    used = set(existing.values())
    for region in regions:
        if region in out:
            continue
        free = next((i for i in range(MAX_SITES) if i not in used), None)
        if free is None:
            raise SpecError(f"the sandbox holds at most {MAX_SITES} regions and {region} would be one more",
                            fix="remove the sandbox with `linker down --sandbox`, then link fewer regions")
        out[region] = free
        used.add(free)
    return out


def next_address(candidates: Sequence[str], in_use: Iterable[str], cursor: int) -> tuple[str, int] | None:
    """The first of ``candidates`` from ``cursor`` on (wrapping) that is not in use, and the cursor after it."""
    busy = set(in_use)
    for step in range(len(candidates)):
        i = (cursor + step) % len(candidates)
        if candidates[i] not in busy:
            return candidates[i], (i + 1) % len(candidates)
    return None


def subnet_hosts(subnet: str) -> tuple[str, ...]:
    """Addresses an instance may get in ``subnet``: all but AWS's reserved ones."""
    net = ipaddress.ip_network(subnet)
    if net.version != 4 or net.num_addresses <= RESERVED_HEAD + RESERVED_TAIL:
        return ()
    first = int(net.network_address) + RESERVED_HEAD
    last = int(net.broadcast_address) - RESERVED_TAIL
    return tuple(str(ipaddress.ip_address(a)) for a in range(first, last + 1))


def is_test_net(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in net for net in TEST_NETS)


@dataclass(frozen=True)
class Names:
    """Names of namespaces and interfaces, from the sandbox's prefix (namespaces are global: keep them apart)."""

    prefix: str

    @property
    def internet(self) -> str:
        return f"{self.prefix}-internet"

    def router(self, index: int) -> str:
        return f"{self.prefix}-vpc{index}-router"

    def host(self, instance_id: str) -> str:
        return f"{self.prefix}-{instance_id}"

    def owns(self, netns: str) -> bool:
        return netns.startswith(f"{self.prefix}-")

    @staticmethod
    def uplink_internet_side(index: int) -> str:
        """In the internet namespace: the link to VPC ``index``'s internet gateway."""
        return f"igw{index}"

    UPLINK_ROUTER_SIDE = "igw"  # in a router namespace: its link to the internet
    API_DEVICE = "lo"  # in the internet namespace: holds the API endpoint's address
    HOST_DEVICE = "eth0"  # in a host namespace: its network interface

    @staticmethod
    def eni_device(eni_id: str) -> str:
        """In a router namespace: the VPC's end of an ENI (interface names are at most 15 characters)."""
        return "e" + hashlib.sha256(eni_id.encode()).hexdigest()[:12]


def prefix_for(directory: str, default_directory: str) -> str:
    """``lks`` for the default sandbox directory; another directory gets its own prefix, so two sandboxes on one
    machine (a person's and a test's) never share a namespace name."""
    if directory == default_directory:
        return "lks"
    return "lks" + hashlib.sha256(directory.encode()).hexdigest()[:4]
