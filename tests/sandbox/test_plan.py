"""The sandbox's layout as data: the address plan, names, and what a VPC router's kernel state must be."""

from __future__ import annotations

import ipaddress

import pytest

from linker.errors import SpecError
from linker.sandbox import addressing, network
from linker.sandbox.addressing import Names, VpcPlan
from linker.sandbox.cloudview import Instance, Route, Rule, Table, Vpc
from linker.sandbox.endpoint import AddressBook
from linker.sandbox.proof import parse_ping


def test_vpcs_take_indexes_in_order_and_keep_them() -> None:
    first = addressing.assign_indexes({}, ["us-east-1", "eu-west-1"])
    assert first == {"us-east-1": 0, "eu-west-1": 1}
    assert [VpcPlan(i).cidr for i in first.values()] == ["10.10.0.0/16", "10.20.0.0/16"]
    later = addressing.assign_indexes({"eu-west-1": 1}, ["ap-south-1", "eu-west-1", "us-west-2"])
    assert later == {"eu-west-1": 1, "ap-south-1": 0, "us-west-2": 2}
    with pytest.raises(SpecError, match="at most"):
        addressing.assign_indexes({f"r{i}": i for i in range(addressing.MAX_SITES)}, ["one-more-1"])


def test_every_public_address_is_test_net_and_every_plan_disjoint() -> None:
    plans = [addressing.vpc_plan(i) for i in range(addressing.MAX_SITES)]
    uplinks = [p.uplink_router for p in plans] + [p.uplink_internet for p in plans]
    assert all(addressing.is_test_net(a) for a in [*uplinks, *addressing.PUBLIC_POOL, addressing.API_ADDRESS])
    assert len(set(uplinks)) == len(uplinks)
    cidrs = [ipaddress.ip_network(p.cidr) for p in plans]
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1:])
    assert all(ipaddress.ip_address(p.workload_ip) in ipaddress.ip_network(p.private_subnet) for p in plans)
    with pytest.raises(SpecError):
        addressing.vpc_plan(addressing.MAX_SITES)


def test_addresses_skip_what_aws_reserves_and_what_is_in_use() -> None:
    hosts = addressing.subnet_hosts("10.10.1.0/24")
    assert hosts[0] == "10.10.1.4" and hosts[-1] == "10.10.1.254" and len(hosts) == 251
    book = AddressBook()
    book.observe(["10.10.1.4", "203.0.113.10"])
    assert book.private("10.10.1.0/24") == "10.10.1.5"
    assert book.private("10.10.1.0/24") == "10.10.1.6"
    assert book.public() == "203.0.113.11"
    assert addressing.next_address(("a", "b"), {"a", "b"}, 0) is None


def test_names_fit_the_kernel_and_keep_sandboxes_apart() -> None:
    assert len(Names.eni_device("eni-0123456789abcdef0")) <= 15
    assert addressing.prefix_for("/run/linker-sandbox", "/run/linker-sandbox") == "lks"
    other = addressing.prefix_for("/run/t", "/run/linker-sandbox")
    assert other.startswith("lks") and other != "lks"
    names = Names(other)
    assert names.owns(names.host("i-1")) and not Names("lks").owns(names.internet)


def _vpc(sdc: bool = True, eip: bool = True) -> Vpc:
    gw = Instance("i-gw", "running", "subnet-pub", "eni-gw", "10.10.1.4", sdc, ("sg-gw",),
                  (("linker:link", "default"),))
    wl = Instance("i-wl", "running", "subnet-priv", "eni-wl", "10.10.2.10", True, ("sg-wl",),
                  (("linker-sandbox:role", "workload"),))
    gone = Instance("i-old", "terminated", "subnet-pub", "eni-old", "10.10.1.5", True, (), ())
    return Vpc(
        region="us-east-1", id="vpc-1", index=0, cidr="10.10.0.0/16", internet_gateway="igw-1",
        subnets=(("subnet-priv", "10.10.2.0/24"), ("subnet-pub", "10.10.1.0/24")),
        tables=(Table("rtb-main", True, (), (Route("10.10.0.0/16", "local", "local"),
                                             Route("10.20.0.0/16", "eni", "eni-gw"),
                                             Route("10.30.0.0/16", "eni", "eni-old"))),
                Table("rtb-pub", False, ("subnet-pub",), (Route("0.0.0.0/0", "gateway", "igw-1"),
                                                          Route("10.20.0.0/16", "eni", "eni-gw"),
                                                          Route("10.40.0.0/16", "gateway", "igw-other")))),
        instances=(gw, wl, gone), public_ips=(("10.10.1.4", "203.0.113.20"),) if eip else (),
        groups=(("sg-gw", (Rule("udp", 51820, 51820, cidr="203.0.113.21/32"), Rule("-1", None, None,
                                                                                  cidr="10.10.0.0/16"))),
                ("sg-wl", (Rule("-1", None, None, group="sg-wl"), Rule("icmp", -1, -1, cidr="10.0.0.0/8")))))


def test_router_plan_maps_route_tables_enis_and_nat() -> None:
    plan = network.plan_router(_vpc(), {"rtb-main": 1000, "rtb-pub": 1001}, ["i-gw", "i-wl"])
    gw, wl = Names.eni_device("eni-gw"), Names.eni_device("eni-wl")
    assert plan.addresses == ("10.10.2.1", "10.10.1.1")
    assert plan.rules[0] == "pref 100 to 10.10.0.0/16 lookup main"
    assert sorted(plan.rules[1:]) == sorted([f"pref 1000 iif {gw} lookup 1001", f"pref 1001 iif {wl} lookup 1000"])
    tables = dict(plan.tables)
    assert tables[1000] == (f"10.20.0.0/16 via 10.10.1.4 dev {gw} onlink", "blackhole 10.30.0.0/16")
    assert tables[1001] == ("0.0.0.0/0 via 198.51.100.1 dev igw", f"10.20.0.0/16 via 10.10.1.4 dev {gw} onlink",
                            "blackhole 10.40.0.0/16")
    assert plan.nat == (("10.10.1.4", "203.0.113.20"),)
    assert "dnat to 10.10.1.4" in plan.nft and "snat to 203.0.113.20" in plan.nft
    # until its ENI exists, a route to a gateway is a blackhole, as AWS shows it
    early = network.plan_router(_vpc(), {"rtb-main": 1000, "rtb-pub": 1001}, ["i-wl"])
    assert "blackhole 10.20.0.0/16" in dict(early.tables)[1000] and early.nat == ()


def test_router_filters_source_dest_check_security_groups_and_the_internet() -> None:
    gw, wl = Names.eni_device("eni-gw"), Names.eni_device("eni-wl")
    nft = network.plan_router(_vpc(sdc=True), {"rtb-main": 1000, "rtb-pub": 1001}, ["i-gw", "i-wl"]).nft
    assert f'iifname "{gw}" ip saddr != 10.10.1.4 drop' in nft and f'oifname "{gw}" ip daddr != 10.10.1.4 drop' in nft
    assert f'oifname "{gw}" ip saddr {{ 203.0.113.21/32 }} udp dport 51820 accept' in nft
    assert f'oifname "{gw}" ip saddr {{ 10.10.0.0/16 }} accept' in nft
    assert f'oifname "{wl}" ip saddr {{ 10.10.2.10 }} accept' in nft  # a group as a source: its members
    assert f'oifname "{wl}" ip saddr {{ 10.0.0.0/8 }} ip protocol icmp accept' in nft
    assert nft.index(f'oifname "{gw}" ct state established') < nft.index(f'oifname "{gw}" counter drop')
    assert 'ip daddr != { 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 } drop' in nft
    assert 'oifname "igw" ip saddr != { 10.10.1.4 } reject' in nft
    off = network.plan_router(_vpc(sdc=False), {"rtb-main": 1000, "rtb-pub": 1001}, ["i-gw", "i-wl"]).nft
    assert f'iifname "{gw}" ip saddr != 10.10.1.4 drop' not in off
    no_eip = network.plan_router(_vpc(eip=False), {"rtb-main": 1000, "rtb-pub": 1001}, ["i-gw", "i-wl"]).nft
    assert 'oifname "igw" reject' in no_eip and "dnat" not in no_eip


def test_internet_routes_only_associated_addresses_of_present_hosts() -> None:
    assert network.internet_routes([_vpc()], ["i-gw"]) == ("203.0.113.20/32 via 198.51.100.2 dev igw0",)
    assert network.internet_routes([_vpc()], []) == ()
    assert "policy drop" in network.internet_ruleset()


def test_ping_summary_is_parsed() -> None:
    text = ("--- 10.20.2.10 ping statistics ---\n5 packets transmitted, 4 received, 20% packet loss, time 803ms\n"
            "rtt min/avg/max/mdev = 0.761/0.929/1.112/0.120 ms\n")
    assert parse_ping(text) == {"sent": 5, "received": 4, "rtt_ms": {"min": 0.761, "avg": 0.929, "max": 1.112}}
    assert parse_ping("") == {"sent": 0, "received": 0, "rtt_ms": None}
