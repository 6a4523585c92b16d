"""The gateway agent's pure parts: peers from the membership, syncconf planning, health.

The membership document itself is tested with the contract (tests/unit/test_contract.py)."""

from linker.contract import Membership, SiteEntry
from linker.gateway.health import assess, cloudwatch_metric_data, prometheus_text
from linker.gateway.membership import desired_peers
from linker.gateway.wgctl import DeviceState, PeerSpec, PeerState, plan_sync

K1, K2, K3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
M = Membership("prod", (
    SiteEntry("us-east-1", "us-east-1", "192.0.2.10", ("10.10.0.0/16",), 51820),
    SiteEntry("eu-west-1", "eu-west-1", "198.51.100.20", ("10.20.0.0/16", "10.21.0.0/16"), 51820),
    SiteEntry("ap-south-1", "ap-south-1", None, ("10.30.0.0/16",), 51820),
))


def test_desired_peers_skip_sites_without_key_or_eip():
    peers = desired_peers(M, "us-east-1", {"eu-west-1": K2, "ap-south-1": K3})
    assert peers == [PeerSpec(K2, "198.51.100.20:51820", ("10.20.0.0/16", "10.21.0.0/16"), 25)]
    assert desired_peers(M, "us-east-1", {}) == []


def test_plan_sync_adds_updates_removes_and_leaves_unchanged_peers_alone():
    a = PeerSpec(K1, "192.0.2.10:51820", ("10.10.0.0/16",), 25)
    b = PeerSpec(K2, "198.51.100.20:51820", ("10.20.0.0/16",), 25)
    current = DeviceState(peers={K1: PeerState(K1, "203.0.113.5:4000", ["10.10.0.0/16"], 25),
                                 K3: PeerState(K3)})
    req = plan_sync([a, b], {K1: a}, current)
    assert req is not None and req.startswith("set=1\n") and req.endswith("\n\n")
    assert f"public_key={K3.hex()}\nremove=true" in req
    assert f"public_key={K2.hex()}\nendpoint=198.51.100.20:51820" in req
    assert K1.hex() not in req, "an unchanged peer (whose endpoint roamed) is not touched"
    moved = PeerSpec(K1, "192.0.2.99:51820", ("10.10.0.0/16",), 25)
    req = plan_sync([moved], {K1: a}, DeviceState(peers={K1: PeerState(K1)}))
    assert f"public_key={K1.hex()}\nupdate_only=true\nendpoint=192.0.2.99:51820" in req
    assert plan_sync([a], {K1: a}, DeviceState(peers={K1: PeerState(K1)})) is None


def test_health_ages_prometheus_and_cloudwatch():
    state = DeviceState(peers={K2: PeerState(K2, "198.51.100.20:51820", ["10.20.0.0/16"], 25, 1000.0, 5, 7)})
    h = assess(state, M, "us-east-1", {"eu-west-1": K2}, now=1030.0)
    eu, ap = h.tunnels
    assert eu.healthy and eu.handshake_age == 30.0 and eu.rx_bytes == 5 and eu.tx_bytes == 7
    assert not ap.healthy and ap.handshake_age is None and ap.public_key is None
    assert not h.healthy and h.to_dict()["healthy"] is False
    stale = assess(state, M, "us-east-1", {"eu-west-1": K2}, now=1000.0 + 181)
    assert not stale.tunnels[0].healthy
    text = prometheus_text(h)
    assert 'linker_tunnel_up{link="prod",site="us-east-1",peer_site="eu-west-1"} 1' in text
    assert 'linker_tunnel_handshake_age_seconds{link="prod",site="us-east-1",peer_site="ap-south-1"}' not in text
    assert "# TYPE linker_tunnel_receive_bytes_total counter" in text
    data = cloudwatch_metric_data(h)
    ages = {d["Dimensions"][2]["Value"]: d["Value"] for d in data if d["MetricName"] == "HandshakeAge"}
    assert ages == {"eu-west-1": 30.0, "ap-south-1": 1e9}
