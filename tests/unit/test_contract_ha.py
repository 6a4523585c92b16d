"""The membership's gateways per site (docs/HA.md): a site with two reads and writes them, a site with one is
written exactly as before, and older documents still read."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linker.contract import GatewayEntry, Membership, SiteEntry
from linker.errors import ContractError

A1 = GatewayEntry("i-0aaaaaaaaaaaaaaa1", "us-east-1a", "192.0.2.10", "10.10.1.5")
A2 = GatewayEntry("i-0bbbbbbbbbbbbbbb2", "us-east-1b", "192.0.2.11", "10.10.2.7")
HA_SITE = SiteEntry("us-east-1", "us-east-1", "192.0.2.10", ("10.10.0.0/16",), 51820, A1.instance, True, (A1, A2))
ONE = SiteEntry("eu-west-1", "eu-west-1", "198.51.100.20", ("10.20.0.0/16",), 51820, "i-0ccccccccccccccc3")
M = Membership("prod", (HA_SITE, ONE))


def test_a_site_with_two_gateways_round_trips_and_names_each() -> None:
    back = Membership.from_json(M.to_json())
    assert back == M
    site = back.site("us-east-1")
    assert site is not None and site.ha and [g.instance for g in site.gateways] == [A1.instance, A2.instance]
    assert site.gateway_entry(A2.instance) == A2 and site.gateway_entry("i-0nothere00000000") is None
    assert A2.endpoint(site.port) == "192.0.2.11:51820" and GatewayEntry("i-1", "z", None, None).endpoint(1) is None
    assert GatewayEntry("i-1", "z", "2001:db8::1", None).endpoint(51820) == "[2001:db8::1]:51820"


def test_the_stored_form_lists_each_gateway_as_instance_zone_address_tunnel() -> None:
    doc = json.loads(M.to_json())
    assert doc["sites"][0]["ha"] is True
    assert doc["sites"][0]["gateways"] == [["i-0aaaaaaaaaaaaaaa1", "us-east-1a", "192.0.2.10", "10.10.1.5"],
                                           ["i-0bbbbbbbbbbbbbbb2", "us-east-1b", "192.0.2.11", "10.10.2.7"]]
    # the first gateway also as the site's own address and gateway: what an agent older than HA reads
    assert doc["sites"][0]["eip"] == "192.0.2.10" and doc["sites"][0]["gateway"] == A1.instance


def test_a_site_with_one_gateway_is_written_as_before() -> None:
    doc = json.loads(M.to_json())
    assert doc["sites"][1] == {"site": "eu-west-1", "region": "eu-west-1", "eip": "198.51.100.20",
                               "cidrs": ["10.20.0.0/16"], "port": 51820, "gateway": "i-0ccccccccccccccc3"}
    old = Membership.from_json(json.dumps({"schema": 1, "link": "x", "sites": [
        {"site": "a", "region": "a", "eip": None, "cidrs": ["10.0.0.0/8"], "port": 1}]}))
    assert not old.sites[0].ha and old.sites[0].gateways == ()


def test_gateways_not_yet_known_are_null() -> None:
    booting = GatewayEntry("i-0bbbbbbbbbbbbbbb2", "us-east-1b", None, None)
    m = Membership("prod", (SiteEntry("s", "s", None, ("10.0.0.0/16",), 1, None, True, (booting,)),))
    assert Membership.from_json(m.to_json()) == m


def test_malformed_gateways_are_refused_naming_the_site() -> None:
    base = M.to_dict()
    for bad in ([["i-1", "us-east-1a", "192.0.2.1"]], [["i-1", "us-east-1a", "nope", None]], [{"instance": "i-1"}],
                [["", "us-east-1a", None, None]], [A1.to_list(), A1.to_list()], "i-1"):
        doc = json.loads(json.dumps(base))
        doc["sites"][0]["gateways"] = bad
        with pytest.raises(ContractError, match="site 'us-east-1'"):
            Membership.from_dict(doc)
    doc = json.loads(json.dumps(base))
    doc["sites"][0]["ha"] = "yes"
    with pytest.raises(ContractError, match=r"site 'us-east-1'\.ha"):
        Membership.from_dict(doc)


ipv4 = st.none() | st.ip_addresses(v=4).map(str)
gateways = st.builds(GatewayEntry, st.text("0123456789abcdef", min_size=1, max_size=17).map(lambda t: f"i-{t}"),
                     st.sampled_from(["us-east-1a", "eu-west-1c", "us-east-1-bos-1a"]), ipv4, ipv4)


@given(st.lists(gateways, max_size=2, unique_by=lambda g: g.instance), st.booleans())
def test_any_site_with_gateways_round_trips(listed: list[GatewayEntry], ha: bool) -> None:
    listed.sort(key=lambda g: g.instance)
    m = Membership("l", (SiteEntry("s", "r", None, ("10.0.0.0/8",), 9, None, ha, tuple(listed)),))
    assert Membership.from_json(m.to_json()) == m
