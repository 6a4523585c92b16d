"""A VPC's router and the sandbox internet, as kernel state: planned from the cloud view (pure), then applied.

Each sandbox VPC has a router namespace playing the AWS VPC router and internet gateway:

- every ENI is a veth whose VPC end is in the router (no address; the host's /32 routed to it, proxy ARP on), and
  the subnets' router addresses (.1) live on its loopback, so every packet between hosts is routed;
- each EC2 route table is a kernel routing table, chosen by the ENI a packet arrives from (its subnet's table,
  else the main one); the VPC's own CIDR is always looked up first (AWS's ``local`` route);
- nftables drops what AWS drops: forwarding through an ENI whose source/destination check is on, ingress that
  no security group rule of the ENI allows (stateful, as security groups are), and traffic to the internet from
  an instance without a public address; the internet gateway does the 1:1 NAT between an instance's private
  address and its Elastic IP.

The internet namespace routes each Elastic IP to its VPC's internet gateway and forwards TEST-NET traffic only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from linker.sandbox import addressing
from linker.sandbox.addressing import Names
from linker.sandbox.cloudview import Instance, Rule, Vpc

TEST_NET_SET = "{ " + ", ".join(str(n) for n in addressing.TEST_NETS) + " }"
LOCAL_RULE_PREF = 100
ENI_RULE_PREF = 1000
VPC_DEVICE = "lo"  # in a router namespace: holds the subnets' router addresses (answered by ARP on every ENI)
PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp"}


@dataclass(frozen=True)
class RouterPlan:
    """Kernel state of one VPC router. ``tables``: (table number, routes in `ip route` syntax)."""

    addresses: tuple[str, ...]
    rules: tuple[str, ...]  # `ip rule add` arguments, each with its own pref
    tables: tuple[tuple[int, tuple[str, ...]], ...]
    nft: str
    nat: tuple[tuple[str, str], ...]  # (private, public)


def _set(items: Iterable[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def plan_router(vpc: Vpc, table_numbers: Mapping[str, int], materialised: Iterable[str]) -> RouterPlan:
    """The router of ``vpc``; ``materialised``: ids of the instances whose ENI exists (their veth is there)."""
    present = set(materialised)
    hosts = [i for i in vpc.live() if i.id in present]
    by_eni = {i.eni_id: i for i in hosts}
    by_id = {i.id: i for i in hosts}
    plan = addressing.vpc_plan(vpc.index)
    tables = []
    for table in vpc.tables:
        routes = []
        for r in table.routes:
            if r.kind == "local":
                continue  # the rule at LOCAL_RULE_PREF looks the VPC's own addresses up first
            target = by_eni.get(r.target) if r.kind == "eni" else by_id.get(r.target) if r.kind == "instance" \
                else None
            if r.kind == "gateway" and r.target == vpc.internet_gateway:
                routes.append(f"{r.destination} via {plan.uplink_internet} dev {Names.UPLINK_ROUTER_SIDE}")
            elif target is not None:
                routes.append(f"{r.destination} via {target.private_ip} dev {Names.eni_device(target.eni_id)} "
                              "onlink")
            else:
                routes.append(f"blackhole {r.destination}")  # AWS shows such a route as a blackhole too
        tables.append((table_numbers[table.id], tuple(sorted(routes))))
    rules = [f"pref {LOCAL_RULE_PREF} to {vpc.cidr} lookup main"]
    for n, host in enumerate(sorted(hosts, key=lambda i: i.eni_id)):
        table = vpc.table_of(host.subnet_id)
        if table is not None:
            rules.append(f"pref {ENI_RULE_PREF + n} iif {Names.eni_device(host.eni_id)} "
                         f"lookup {table_numbers[table.id]}")
    nat = tuple(sorted((i.private_ip, ip) for i in hosts if (ip := vpc.public_ip(i.private_ip))))
    return RouterPlan(tuple(addressing.router_ip(cidr) for _, cidr in vpc.subnets), tuple(rules), tuple(tables),
                      router_ruleset(vpc, hosts, nat), nat)


def _sources(rule: Rule, vpc: Vpc) -> list[str]:
    if rule.cidr is not None:
        return [rule.cidr]
    return sorted(i.private_ip for i in vpc.live() if rule.group in i.groups)


def _match(rule: Rule) -> str:
    proto = PROTOCOLS.get(rule.protocol)
    if rule.protocol == "-1":
        return ""
    if proto is None:
        return f"ip protocol {rule.protocol} "
    if proto == "icmp":
        return "ip protocol icmp " if rule.from_port in (None, -1) else f"icmp type {rule.from_port} "
    low, high = rule.from_port, rule.to_port
    if low is None or (low, high) == (0, 65535):
        return f"ip protocol {proto} "
    return f"{proto} dport {low}-{high} " if high not in (None, low) else f"{proto} dport {low} "


def ingress_lines(host: Instance, vpc: Vpc) -> list[str]:
    """nftables lines enforcing ``host``'s security groups on traffic routed to its ENI (stateful)."""
    dev = Names.eni_device(host.eni_id)
    lines = [f'oifname "{dev}" ct state established,related accept']
    for group in host.groups:
        for rule in vpc.rules(group):
            sources = _sources(rule, vpc)
            if sources:
                lines.append(f'oifname "{dev}" ip saddr {_set(sources)} {_match(rule)}accept')
    lines.append(f'oifname "{dev}" counter drop comment "no security group rule allows it"')
    return lines


def router_ruleset(vpc: Vpc, hosts: list[Instance], nat: tuple[tuple[str, str], ...]) -> str:
    """The router's nftables ruleset: a whole-table replacement, loaded in one transaction."""
    uplink = Names.UPLINK_ROUTER_SIDE
    forward = [f'oifname "{uplink}" ip daddr != {TEST_NET_SET} drop comment "the sandbox internet is TEST-NET only"']
    if nat:
        forward.append(f'oifname "{uplink}" ip saddr != {_set(p for p, _ in nat)} reject with icmp type '
                       'admin-prohibited comment "no public address: no internet"')
    else:
        forward.append(f'oifname "{uplink}" reject with icmp type admin-prohibited '
                       'comment "no public address: no internet"')
    for host in sorted(hosts, key=lambda i: i.eni_id):
        dev = Names.eni_device(host.eni_id)
        if host.source_dest_check:
            forward += [f'iifname "{dev}" ip saddr != {host.private_ip} drop comment "source/dest check"',
                        f'oifname "{dev}" ip daddr != {host.private_ip} drop comment "source/dest check"']
        forward += ingress_lines(host, vpc)
    text = ["table inet sandbox", "delete table inet sandbox", "table inet sandbox {",
            "  chain forward {", "    type filter hook forward priority filter; policy accept;",
            *(f"    {line}" for line in forward), "  }", "}",
            "table ip sandbox_nat", "delete table ip sandbox_nat", "table ip sandbox_nat {",
            "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
            *(f'    iifname "{uplink}" ip daddr {public} dnat to {private}' for private, public in nat),
            "  }", "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
            *(f'    oifname "{uplink}" ip saddr {private} snat to {public}' for private, public in nat),
            "  }", "}"]
    return "\n".join(text) + "\n"


def internet_routes(vpcs: Iterable[Vpc], materialised: Iterable[str]) -> tuple[str, ...]:
    """Routes of the internet namespace: each associated Elastic IP to its VPC's internet gateway."""
    present = set(materialised)
    routes = []
    for vpc in vpcs:
        plan = addressing.vpc_plan(vpc.index)
        hosts = {i.private_ip for i in vpc.live() if i.id in present}
        for private, public in vpc.public_ips:
            if private in hosts:
                routes.append(f"{public}/32 via {plan.uplink_router} dev {Names.uplink_internet_side(vpc.index)}")
    return tuple(sorted(routes))


def internet_ruleset() -> str:
    """The internet namespace forwards and sends TEST-NET traffic only: nothing else exists out there."""
    return "\n".join([
        "table ip sandbox", "delete table ip sandbox", "table ip sandbox {",
        "  chain forward {", "    type filter hook forward priority filter; policy drop;",
        f"    ip saddr {TEST_NET_SET} ip daddr {TEST_NET_SET} accept", "  }",
        "  chain output {", "    type filter hook output priority filter; policy drop;",
        f"    ip daddr {TEST_NET_SET} accept", "    oifname \"lo\" accept", "  }", "}"]) + "\n"
