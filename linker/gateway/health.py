"""Tunnel health: what the daemon reports, per peer site, as one document, Prometheus text and CloudWatch data.

The document is ``linker.contract.GatewayHealth`` (``linker status`` reads it). Pure functions of (device state,
membership, now). A tunnel is healthy when its last handshake is younger than REJECT_AFTER_TIME: with persistent
keepalives the initiator rekeys every two minutes, so an older handshake means the session is gone.
"""

from __future__ import annotations

from linker.contract import GatewayHealth, Membership, TunnelHealth
from linker.gateway.wgctl import DeviceState
from linker.wg.constants import REJECT_AFTER_TIME
from linker.wg.keys import to_base64

HEALTHY_HANDSHAKE_AGE = REJECT_AFTER_TIME
METRIC_NAMESPACE = "Linker"


def assess(state: DeviceState, membership: Membership, own_site: str, keys: dict[str, bytes],
           now: float) -> GatewayHealth:
    """Each peer site's tunnel as ``state`` shows it at wall-clock ``now``."""
    tunnels = []
    for entry in membership.peers_of(own_site):
        key = keys.get(entry.site)
        peer = state.peers.get(key) if key else None
        last = peer.last_handshake if peer else None
        age = None if last is None else max(0.0, now - last)
        tunnels.append(TunnelHealth(
            peer_site=entry.site,
            public_key=to_base64(key) if key else None,
            endpoint=peer.endpoint if peer else None,
            last_handshake=last,
            handshake_age=age,
            rx_bytes=peer.rx_bytes if peer else 0,
            tx_bytes=peer.tx_bytes if peer else 0,
            healthy=age is not None and age < HEALTHY_HANDSHAKE_AGE,
        ))
    return GatewayHealth(membership.link, own_site, now, tuple(tunnels))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(health: GatewayHealth) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    rows = [
        ("linker_tunnel_up", "gauge", "1 if the tunnel's last handshake is recent", lambda t: int(t.healthy)),
        ("linker_tunnel_handshake_age_seconds", "gauge", "seconds since the last handshake (absent: never)",
         lambda t: t.handshake_age),
        ("linker_tunnel_receive_bytes_total", "counter", "bytes received from the peer", lambda t: t.rx_bytes),
        ("linker_tunnel_transmit_bytes_total", "counter", "bytes sent to the peer", lambda t: t.tx_bytes),
    ]
    out = []
    for name, kind, help_text, get in rows:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for t in health.tunnels:
            value = get(t)
            if value is None:
                continue
            labels = f'link="{_label(health.link)}",site="{_label(health.site)}",peer_site="{_label(t.peer_site)}"'
            out.append(f"{name}{{{labels}}} {value}")
    return "\n".join(out) + "\n"


def cloudwatch_metric_data(health: GatewayHealth) -> list[dict]:
    """``MetricData`` for CloudWatch PutMetricData in the ``Linker`` namespace: alarm on HandshakeAge."""
    data = []
    for t in health.tunnels:
        dims = [{"Name": "Link", "Value": health.link}, {"Name": "Site", "Value": health.site},
                {"Name": "PeerSite", "Value": t.peer_site}]
        data.append({"MetricName": "TunnelUp", "Dimensions": dims, "Value": float(t.healthy), "Unit": "Count"})
        # a tunnel that never handshook reports a large age, so an alarm on the age fires for it too
        age = t.handshake_age if t.handshake_age is not None else 1e9
        data.append({"MetricName": "HandshakeAge", "Dimensions": dims, "Value": age, "Unit": "Seconds"})
        data.append({"MetricName": "RxBytes", "Dimensions": dims, "Value": float(t.rx_bytes), "Unit": "Bytes"})
        data.append({"MetricName": "TxBytes", "Dimensions": dims, "Value": float(t.tx_bytes), "Unit": "Bytes"})
    return data
