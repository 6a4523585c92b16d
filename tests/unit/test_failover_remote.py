"""The receiving side: which peer of a remote site gets that site's CIDRs (docs/HA.md, rule 7)."""

from linker.gateway.actives import Ignored, MoveSiteCidrs, RemoteActives
from linker.gateway.failover_wire import Announcement

LINK = "prod"
GATEWAYS = {"us-east-1": {"i-0aaa": "10.0.1.10", "i-0bbb": "10.0.2.10"},
            "ap-south-1": {"i-0ccc": "10.9.1.10", "i-0ddd": "10.9.2.10"}}


def remote() -> RemoteActives:
    return RemoteActives(LINK, GATEWAYS)


def ann(instance: str, epoch: int, site: str = "us-east-1", link: str = LINK) -> Announcement:
    return Announcement(link, site, instance, epoch)


def test_a_newer_epoch_from_that_gateways_tunnel_address_moves_the_site_cidrs():
    r = remote()
    assert r.announced(ann("i-0bbb", 5), "10.0.2.10") == MoveSiteCidrs("us-east-1", "i-0bbb", 5)
    assert r.active("us-east-1") == ("i-0bbb", 5) and r.active("ap-south-1") is None
    assert r.announced(ann("i-0aaa", 6), "10.0.1.10") == MoveSiteCidrs("us-east-1", "i-0aaa", 6)


def test_repeated_replayed_and_older_announcements_change_nothing():
    r = remote()
    r.announced(ann("i-0bbb", 5), "10.0.2.10")
    assert "a repeat" in r.announced(ann("i-0bbb", 5), "10.0.2.10").reason
    assert "stale" in r.announced(ann("i-0aaa", 4), "10.0.1.10").reason  # an old active's heartbeat
    assert "stale" in r.announced(ann("i-0aaa", 5), "10.0.1.10").reason  # an equal epoch never flips a site
    assert r.active("us-east-1") == ("i-0bbb", 5)


def test_an_announcement_from_an_address_that_is_not_that_gateways_is_ignored():
    r = remote()
    for source in ("10.0.1.10",  # the sibling's tunnel address: the sibling cannot speak for it
                   "10.9.1.10",  # another site's gateway
                   "10.0.1.99",  # a workload of the site (through the active's tunnel)
                   "not an address"):
        verdict = r.announced(ann("i-0bbb", 5), source)
        assert isinstance(verdict, Ignored) and "not from its tunnel address" in verdict.reason
    assert r.active("us-east-1") is None


def test_an_announcement_naming_another_sites_gateway_an_unknown_site_or_link_is_ignored():
    r = remote()
    assert "not a gateway of us-east-1" in r.announced(ann("i-0ccc", 5), "10.9.1.10").reason
    assert "not a remote site" in r.announced(ann("i-0ccc", 5, site="eu-west-1"), "10.9.1.10").reason
    assert "link 'other'" in r.announced(ann("i-0bbb", 5, link="other"), "10.0.2.10").reason
    assert r.active("us-east-1") is None and r.active("ap-south-1") is None


def test_the_address_is_compared_as_an_address():
    r = RemoteActives(LINK, {"us-east-1": {"i-0aaa": "fd00::0a"}})
    assert isinstance(r.announced(ann("i-0aaa", 1), "fd00:0:0::a"), MoveSiteCidrs)


def test_the_slow_path_record_follows_the_same_epoch_rule():
    r = remote()
    assert r.recorded("us-east-1", "i-0aaa", 3) == MoveSiteCidrs("us-east-1", "i-0aaa", 3)
    assert isinstance(r.announced(ann("i-0bbb", 2), "10.0.2.10"), Ignored)
    assert isinstance(r.recorded("us-east-1", "i-0bbb", 3), Ignored)
    assert isinstance(r.recorded("us-east-1", "i-0ccc", 9), Ignored)
    assert r.announced(ann("i-0bbb", 4), "10.0.2.10") == MoveSiteCidrs("us-east-1", "i-0bbb", 4)


def test_a_site_is_forgotten_when_its_holder_leaves_the_membership():
    r = remote()
    r.announced(ann("i-0bbb", 9), "10.0.2.10")
    r.announced(ann("i-0ccc", 3, site="ap-south-1"), "10.9.1.10")
    r.set_gateways({"us-east-1": {"i-0aaa": "10.0.1.10", "i-0eee": "10.0.3.10"}, "ap-south-1": GATEWAYS["ap-south-1"]})
    assert r.active("us-east-1") is None and r.active("ap-south-1") == ("i-0ccc", 3)
    # the site's record was made again: its versions restart at 1
    assert r.announced(ann("i-0eee", 1), "10.0.3.10") == MoveSiteCidrs("us-east-1", "i-0eee", 1)
    assert isinstance(r.announced(ann("i-0bbb", 10), "10.0.2.10"), Ignored)  # no longer a gateway


def test_the_active_peer_holds_the_site_cidrs_and_every_peer_its_own_host_route():
    from linker.gateway.actives import site_allowed_ips
    gws = GATEWAYS["us-east-1"]
    assert site_allowed_ips(("10.0.0.0/16",), gws, "i-0bbb") == {
        "i-0aaa": ("10.0.1.10/32",), "i-0bbb": ("10.0.2.10/32", "10.0.0.0/16")}
    lower = {"i-0aaa": ("10.0.1.10/32", "10.0.0.0/16"), "i-0bbb": ("10.0.2.10/32",)}
    assert site_allowed_ips(("10.0.0.0/16",), gws, None) == lower  # nothing applied yet: the lower id
    assert site_allowed_ips(("10.0.0.0/16",), gws, "i-0old") == lower  # a gateway that left the membership
    assert site_allowed_ips(("fd00::/48",), {"i-1": "fd00::a"}, None) == {"i-1": ("fd00::a/128", "fd00::/48")}
    assert site_allowed_ips(("10.0.0.0/16",), {}, None) == {}
