"""The SSM documents of a 20-site link fit SSM's standard tier (4 KB, free): built with realistic values (IPv4
EIPs, two CIDRs per site, the longest region names, 19 tunnels with 12-digit byte counts), and read back."""

from __future__ import annotations

import base64
import os

import pytest

from linker.contract import STANDARD_TIER_BYTES, GatewayHealth, Membership, SiteEntry, TunnelHealth

REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-west-1", "eu-west-2", "eu-west-3",
           "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "ap-south-1", "ap-southeast-1",
           "ap-southeast-2", "ap-southeast-3", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "sa-east-1")
LINK = "production-link-01"


def membership(n: int = 20) -> Membership:
    return Membership(LINK, tuple(SiteEntry(r, r, f"203.0.113.{100 + i}", (f"10.{i}.0.0/16", f"172.{16 + i}.0.0/16"),
                                            51820) for i, r in enumerate(REGIONS[:n])))


def health(m: Membership, site: str) -> GatewayHealth:
    tunnels = tuple(TunnelHealth(p.site, base64.b64encode(os.urandom(32)).decode(), p.endpoint(),
                                 1764765612.123456, 13.876543, 123456789012, 98765432109, True)
                    for p in m.peers_of(site))
    return GatewayHealth(LINK, site, 1764765625.999999, tunnels)


def test_a_20_site_links_documents_fit_the_standard_tier_and_read_back() -> None:
    m = membership()
    assert len(m.to_json().encode()) <= STANDARD_TIER_BYTES - 1024  # about 2.7 KB: room for ~8 more sites
    assert Membership.from_json(m.to_json()) == m
    for site in m.site_names():
        h = health(m, site)
        assert len(h.tunnels) == 19
        stored = h.to_document()
        assert len(stored.encode()) <= STANDARD_TIER_BYTES - 512, len(stored)  # about 3.2 KB
        back = GatewayHealth.from_json(stored)
        assert back.site == site and back.healthy and len(back.tunnels) == 19
        assert [(t.peer_site, t.last_handshake, t.handshake_age, t.rx_bytes, t.tx_bytes, t.healthy)
                for t in back.tunnels] == [(t.peer_site, t.last_handshake, t.handshake_age, t.rx_bytes,
                                            t.tx_bytes, t.healthy) for t in h.tunnels]
        assert all(t.endpoint is None and t.public_key is None for t in back.tunnels)


def test_the_full_report_outgrew_the_standard_tier_and_is_still_read() -> None:
    """What agents wrote before (``to_json``, with endpoints and keys): over 4 KB at 20 sites, readable still."""
    m = membership()
    full = health(m, REGIONS[-1])
    assert len(full.to_json().encode()) > STANDARD_TIER_BYTES
    assert GatewayHealth.from_json(full.to_json()) == full


def test_a_membership_over_the_standard_tier_is_refused_before_anything_is_made() -> None:
    from linker.control.changes import Ref
    from linker.control.membership_doc import PlannedSite, check_size
    from linker.errors import SpecError

    def sites(n: int) -> list[PlannedSite]:
        return [PlannedSite(f"site-{i:02d}-southeast", "ap-southeast-2", Ref("eip-ip", str(i)),
                            (f"10.{i}.0.0/16", f"172.{16 + i % 16}.{i}.0/24"), 51820) for i in range(n)]

    check_size(LINK, sites(20))
    with pytest.raises(SpecError, match="membership document of 40 sites"):
        check_size(LINK, sites(40))


def ha_membership(n: int) -> Membership:
    """``n`` sites of two gateways each, every value at its realistic longest (17-hex instance ids)."""
    from linker.contract import GatewayEntry
    sites = []
    for i, s in enumerate(membership(n).sites):
        pair = (GatewayEntry(f"i-0{i:02d}3456789abcdef", f"{s.region}a", s.eip, f"10.{i}.128.100"),
                GatewayEntry(f"i-0{i:02d}3456789abcdff", f"{s.region}b", f"198.51.100.{100 + i}", f"10.{i}.129.100"))
        sites.append(SiteEntry(s.site, s.region, s.eip, s.cidrs, s.port, pair[0].instance, True, pair))
    return Membership(LINK, tuple(sites))


def test_with_two_gateways_a_site_takes_about_twice_the_room() -> None:
    """Each gateway adds its instance, zone, address and tunnel address: about 12 such sites fit where about 24
    with one gateway do (README, ``check_size``)."""
    m = ha_membership(12)
    assert len(m.to_json().encode()) <= STANDARD_TIER_BYTES
    assert Membership.from_json(m.to_json()) == m
    assert len(ha_membership(14).to_json().encode()) > STANDARD_TIER_BYTES


def test_an_ha_membership_over_the_standard_tier_is_refused_naming_the_gateways() -> None:
    from linker.control.changes import Ref
    from linker.control.membership_doc import PlannedGateway, PlannedSite, check_size
    from linker.errors import SpecError

    def sites(n: int, ha: bool) -> list[PlannedSite]:
        return [PlannedSite(r, r, Ref("eip-ip", r), (f"10.{i}.0.0/16", f"172.{16 + i}.0.0/16"), 51820,
                            Ref("instance", r), ha,
                            tuple(PlannedGateway(Ref("instance", f"{r}/{k}"), f"{r}{k}", Ref("eip-ip", f"{r}/{k}"),
                                                 Ref("tunnel", f"{r}/{k}")) for k in "ab") if ha else ())
                for i, r in enumerate(REGIONS)]

    check_size(LINK, sites(20, False)[:20])  # one gateway each: 20 sites fit
    check_size(LINK, sites(20, True)[:11])
    with pytest.raises(SpecError, match="20 sites \\(20 of them with two gateways\\)") as info:
        check_size(LINK, sites(20, True))
    assert "fewer sites two gateways" in (info.value.fix or "")
