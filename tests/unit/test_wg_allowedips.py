import ipaddress

from linker.wg.allowedips import AllowedIPs


def a(s):
    return ipaddress.ip_address(s).packed


def test_longest_prefix_wins_and_default_route_catches_the_rest():
    t = AllowedIPs()
    t.insert("0.0.0.0/0", "default")
    t.insert("10.0.0.0/8", "wide")
    t.insert("10.1.0.0/16", "narrow")
    t.insert("10.1.2.3/32", "host")
    assert t.lookup(a("10.1.2.3")) == "host"
    assert t.lookup(a("10.1.2.4")) == "narrow"
    assert t.lookup(a("10.200.0.1")) == "wide"
    assert t.lookup(a("192.0.2.1")) == "default"


def test_ipv6_and_ipv4_are_separate():
    t = AllowedIPs()
    t.insert("2001:db8::/32", "v6")
    t.insert("2001:db8:1::/48", "v6narrow")
    assert t.lookup(a("2001:db8:1::5")) == "v6narrow"
    assert t.lookup(a("2001:db8:2::5")) == "v6"
    assert t.lookup(a("10.0.0.1")) is None
    assert t.lookup(a("::1")) is None


def test_a_network_moves_to_the_peer_that_claims_it_last():
    t = AllowedIPs()
    p, q = object(), object()
    t.insert("10.0.0.0/24", p)
    assert t.lookup(a("10.0.0.9")) is p
    t.insert("10.0.0.0/24", q)
    assert t.lookup(a("10.0.0.9")) is q
    assert t.networks_of(p) == []


def test_host_bits_are_cleared_and_removal_invalidates_cache():
    t = AllowedIPs()
    p = object()
    t.insert("10.9.8.7/16", p)
    assert [str(n) for n in t.networks_of(p)] == ["10.9.0.0/16"]
    assert t.lookup(a("10.9.1.1")) is p
    t.remove_value(p)
    assert t.lookup(a("10.9.1.1")) is None


def test_lookup_of_a_malformed_address_is_none():
    assert AllowedIPs().lookup(b"\x01\x02") is None
