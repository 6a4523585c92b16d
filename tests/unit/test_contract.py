"""The documents controller and gateways exchange: each round-trips, refuses newer schemas and malformed input."""

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linker.contract import (
    HEALTH_SCHEMA,
    MEMBERSHIP_SCHEMA,
    GatewayHealth,
    Membership,
    PublicKey,
    SiteEntry,
    TunnelHealth,
)
from linker.errors import CloudError, ContractError, ContractVersionError

M = Membership("prod", (
    SiteEntry("us-east-1", "us-east-1", "192.0.2.10", ("10.10.0.0/16",), 51820),
    SiteEntry("eu-west-1", "eu-west-1", "198.51.100.20", ("10.20.0.0/16", "10.21.0.0/16"), 51820),
    SiteEntry("ap-south-1", "ap-south-1", None, ("10.30.0.0/16",), 51820),
))
H = GatewayHealth("prod", "us-east-1", 1700000000.5, (
    TunnelHealth("eu-west-1", "Ag" * 21 + "A=", "198.51.100.20:51820", 1699999970.5, 30.0, 5, 7, True),
    TunnelHealth("ap-south-1", None, None, None, None, 0, 0, False),
))

names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
ipv4 = st.ip_addresses(v=4).map(str)
cidrs = st.ip_addresses(v=4).flatmap(lambda a: st.integers(8, 32).map(
    lambda n: str(ipaddress.ip_network(f"{a}/{n}", strict=False))))
entries = st.builds(SiteEntry, names, names, st.none() | ipv4, st.tuples(cidrs) | st.tuples(cidrs, cidrs),
                    st.integers(1, 65535))
memberships = st.builds(Membership, names, st.lists(entries, max_size=5, unique_by=lambda e: e.site).map(tuple))
seconds = st.floats(0, 2e9, allow_nan=False)
tunnels = st.builds(TunnelHealth, names, st.none() | st.just("Ag" * 21 + "A="), st.none() | st.just("192.0.2.1:1"),
                    st.none() | seconds, st.none() | seconds, st.integers(0, 2**63), st.integers(0, 2**63),
                    st.booleans())
healths = st.builds(GatewayHealth, names, names, seconds, st.lists(tunnels, max_size=4).map(tuple))


# --- membership ---

def test_membership_round_trips() -> None:
    assert Membership.from_json(M.to_json()) == M
    assert M.peers_of("us-east-1") == list(M.sites[1:]) and M.site("ap-south-1") == M.sites[2]
    assert M.sites[0].endpoint() == "192.0.2.10:51820" and M.sites[2].endpoint() is None


@given(memberships)
def test_any_membership_round_trips(m: Membership) -> None:
    assert Membership.from_json(m.to_json()) == m


def test_membership_wire_format_is_what_gateways_read_today() -> None:
    """Schema 1 as written before the contract module: current gateways parse exactly this."""
    doc = json.loads(Membership("x", (SiteEntry("a", "a", None, ("10.0.0.0/8",), 1),)).to_json())
    assert doc == {"schema": 1, "link": "x",
                   "sites": [{"site": "a", "region": "a", "eip": None, "cidrs": ["10.0.0.0/8"], "port": 1}]}


def test_membership_rejects_bad_documents() -> None:
    for bad in ["{", '{"schema": 1, "link": "x", "sites": [{"site": "a", "region": "a", "eip": "nope", "cidrs": [], '
                '"port": 1}]}',
                '{"schema": 1, "link": "x", "sites": [{"site": "a", "region": "a", "eip": null, '
                '"cidrs": ["10.0.0.1/8"], "port": 1}]}',
                '{"schema": 1, "link": "x", "sites": [{"site": "a", "region": "a", "eip": null, "cidrs": [], '
                '"port": 70000}]}',
                '[]', '{"link": "x", "sites": []}', '{"schema": "1", "link": "x", "sites": []}',
                '{"schema": 1, "sites": []}', '{"schema": 1, "link": "x", "sites": {}}',
                '{"schema": 1, "link": "x", "sites": [{"site": "a"}]}']:
        with pytest.raises(ContractError) as info:
            Membership.from_json(bad)
        assert "membership" in info.value.message and not isinstance(info.value, ContractVersionError)


def test_membership_refuses_a_newer_schema_with_the_fix() -> None:
    doc = {**M.to_dict(), "schema": MEMBERSHIP_SCHEMA + 1}
    with pytest.raises(ContractVersionError) as info:
        Membership.from_dict(doc)
    assert "newer linker" in info.value.message and info.value.fix and "upgrade" in info.value.fix
    assert isinstance(info.value, CloudError)  # the CLI's exit path: a problem with what is in the cloud
    with pytest.raises(ContractVersionError):
        Membership.from_json('{"schema": 9, "link": "x", "sites": []}')


def test_membership_names_the_broken_site() -> None:
    doc = M.to_dict()
    doc["sites"][1]["port"] = "51820"
    with pytest.raises(ContractError, match=r"site 'eu-west-1'\.port"):
        Membership.from_dict(doc)


@given(st.binary(max_size=64) | st.text(max_size=64))
def test_membership_never_fails_otherwise_on_garbage(data: bytes | str) -> None:
    try:
        Membership.from_json(data)
    except ContractError:
        pass


# --- public key ---

def test_public_key_round_trips_as_bare_base64() -> None:
    key = PublicKey(bytes(range(32)))
    assert PublicKey.from_text(key.to_text()) == key and PublicKey.from_text(key.to_text() + "\n") == key
    assert len(key.to_text()) == 44


@given(st.binary(min_size=32, max_size=32))
def test_any_public_key_round_trips(raw: bytes) -> None:
    assert PublicKey.from_text(PublicKey(raw).to_text()).key == raw


def test_public_key_rejects_malformed_input() -> None:
    for bad in ["", "abc", "A" * 44, "!" * 43 + "=", "AAAA" * 10 + "AA=="]:
        with pytest.raises(ContractError):
            PublicKey.from_text(bad)
    with pytest.raises(ContractError):
        PublicKey(b"short")


# --- health ---

def test_health_round_trips() -> None:
    assert GatewayHealth.from_json(H.to_json()) == H
    assert not H.healthy and H.to_dict()["healthy"] is False


@given(healths)
def test_any_health_round_trips(h: GatewayHealth) -> None:
    assert GatewayHealth.from_json(h.to_json()) == h


def test_health_wire_format_keeps_the_fields_readers_use_today() -> None:
    doc = json.loads(H.to_json())
    assert doc["schema"] == HEALTH_SCHEMA
    assert set(doc) == {"schema", "link", "site", "reported_at", "healthy", "tunnels"}
    assert set(doc["tunnels"][0]) == {"peer_site", "public_key", "endpoint", "last_handshake", "handshake_age",
                                      "rx_bytes", "tx_bytes", "healthy"}


def test_health_without_schema_is_a_report_of_an_older_agent() -> None:
    old = {"link": "default", "site": "a", "reported_at": 12, "healthy": True,
           "tunnels": [{"peer_site": "b", "handshake_age": 12.0, "rx_bytes": 10, "tx_bytes": 20, "healthy": True,
                        "endpoint": None, "public_key": None, "last_handshake": None}]}
    h = GatewayHealth.from_dict(old)
    assert h.healthy and h.reported_at == 12.0 and h.tunnels[0].handshake_age == 12.0


def test_health_refuses_a_newer_schema() -> None:
    with pytest.raises(ContractVersionError, match="health document has schema 2"):
        GatewayHealth.from_dict({**H.to_dict(), "schema": HEALTH_SCHEMA + 1})


def test_health_rejects_bad_documents() -> None:
    good = H.to_dict()
    bads = [{**good, "tunnels": None}, {**good, "reported_at": "now"}, {**good, "reported_at": float("nan")},
            {k: v for k, v in good.items() if k != "site"},
            {**good, "tunnels": [{**good["tunnels"][0], "rx_bytes": -1}]},
            {**good, "tunnels": [{**good["tunnels"][0], "healthy": "yes"}]},
            {**good, "tunnels": [{k: v for k, v in good["tunnels"][0].items() if k != "handshake_age"}]}]
    for bad in bads:
        with pytest.raises(ContractError, match="health document is malformed"):
            GatewayHealth.from_dict(bad)
    with pytest.raises(ContractError, match="not JSON"):
        GatewayHealth.from_json("{")
