"""The monthly cost of a link as the bill will show it, from us-east-1 on-demand list prices in USD (other regions
differ by a few tens of percent; the estimate says so).

What a link pays for: each gateway's instance hours, its public IPv4 address, its encrypted gp3 root volume, the
CloudWatch custom metrics its agent publishes (4 per tunnel: with n sites, n-1 tunnels per gateway, so metrics grow
with the square of the sites) and the PutMetricData requests; and, per GB, the traffic between regions. Gateways of
the burstable families launch with standard CPU credits (no surplus charges); their network baseline is shown,
since it is what a link carries for long. The link's SSM parameters cost nothing: they stay in the standard tier
(4 KB a value), a 20-site link's membership and health reports included (tests/unit/test_document_sizes.py), so no
advanced-tier parameter ($0.05 a month each, plus charged API calls) is ever made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HOURS_PER_MONTH = 730
PUBLIC_IPV4_HOURLY = 0.005  # every public IPv4 address, Elastic IPs included
GP3_GB_MONTH = 0.08
ROOT_VOLUME_GB = 8  # Amazon Linux 2023's root volume
METRIC_MONTH = 0.30  # a custom metric, first 10,000
METRICS_PER_TUNNEL = 4  # TunnelUp, HandshakeAge, RxBytes, TxBytes (linker/gateway/health.py)
METRICS_PER_CALL = 20  # PutMetricData batch (linker/gateway/cloud.py)
PUBLISH_SECONDS = 30
REQUESTS_PER_1000 = 0.01
INTER_REGION_GB = 0.02  # from us-east-1 to another region; up to $0.09 from some regions
BURSTABLE = ("t2.", "t3.", "t3a.", "t4g.")
HOURLY = {
    "t3.nano": 0.0052, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416,
    "t3a.nano": 0.0047, "t3a.micro": 0.0094, "t3a.small": 0.0188,
    "t4g.nano": 0.0042, "t4g.micro": 0.0084, "t4g.small": 0.0168, "t4g.medium": 0.0336,
    "c6gn.medium": 0.0432, "c6gn.large": 0.0864, "c5n.large": 0.108, "c7gn.medium": 0.0624,
    "m5.large": 0.096, "m6g.medium": 0.0385, "m7g.medium": 0.0408,
}
# AWS's documented baseline network bandwidth, Mbit/s (what the instance carries for long, past its bursts)
BASELINE_MBIT = {
    "t3.nano": 32, "t3.micro": 64, "t3.small": 128, "t3.medium": 256,
    "t3a.nano": 32, "t3a.micro": 64, "t3a.small": 128,
    "t4g.nano": 32, "t4g.micro": 64, "t4g.small": 128, "t4g.medium": 256,
    "c6gn.medium": 1600, "c6gn.large": 3000, "c5n.large": 3000, "c7gn.medium": 3125,
    "m5.large": 750, "m6g.medium": 500, "m7g.medium": 520,
}


def burstable(instance_type: str) -> bool:
    return instance_type.startswith(BURSTABLE)


@dataclass(frozen=True)
class Estimate:
    sites: int
    instance_type: str
    instance_monthly: float | None  # per gateway; None: no price known for the type
    ip_monthly: float  # per gateway
    volume_monthly: float  # per gateway
    metrics_monthly: float  # the whole link: metrics and PutMetricData requests
    baseline_mbit: int | None
    per_site: int = 1  # gateways per site: 2 with --ha (docs/HA.md)

    @property
    def gateways(self) -> int:
        return self.sites * self.per_site

    @property
    def total(self) -> float | None:
        if self.instance_monthly is None:
            return None
        per_gateway = self.instance_monthly + self.ip_monthly + self.volume_monthly
        return round(self.gateways * per_gateway + self.metrics_monthly, 2)

    @property
    def second_monthly(self) -> float | None:
        """What the second gateway of every site adds (``--ha``): its instances, addresses and volumes, and the
        metrics of the extra tunnels; 0 with one gateway per site, None when the type has no known price."""
        if self.total is None:
            return None
        if self.per_site == 1:
            return 0.0
        one = estimate(self.sites, self.instance_type)
        return round(self.total - (one.total or 0.0), 2)

    def to_dict(self) -> dict[str, object]:
        return {"sites": self.sites, "gateways_per_site": self.per_site, "gateways": self.gateways,
                "instance_type": self.instance_type, "currency": "USD",
                "instance_per_site": self.instance_monthly, "public_ip_per_site": self.ip_monthly,
                "volume_per_site": self.volume_monthly, "metrics_total": self.metrics_monthly,
                "monthly_total": self.total, "second_gateways_monthly": self.second_monthly,
                "inter_region_per_gb": INTER_REGION_GB,
                "cpu_credits": "standard" if burstable(self.instance_type) else None,
                "baseline_mbit_s": self.baseline_mbit,
                "basis": "us-east-1 on-demand list prices; plus traffic between regions per GB"}

    def line(self) -> str:
        fixed = (f"public IP ${self.ip_monthly:.2f} + gp3 volume ${self.volume_monthly:.2f} per gateway, "
                 f"metrics ${self.metrics_monthly:.2f} for the link")
        if self.total is None:
            head = f"estimated cost: no price known for {self.instance_type}; {fixed}"
        else:
            two = f", two per site: the second costs ${self.second_monthly:.2f}/month" if self.per_site > 1 else ""
            head = (f"estimated cost: ${self.total:.2f}/month for {self.gateways} gateways{two} "
                    f"({self.instance_type} ${self.instance_monthly:.2f} + {fixed})")
        tail = f"; plus ${INTER_REGION_GB:.2f} per GB between regions (us-east-1 list prices)"
        if self.baseline_mbit is not None:
            tail += f"; {self.instance_type} carries about {self.baseline_mbit} Mbit/s for long (AWS's baseline)"
        if burstable(self.instance_type):
            tail += ", standard CPU credits (no surplus charges; a busy tunnel is throttled to the baseline)"
        return head + tail


def estimate(sites: int, instance_type: str, per_site: int = 1) -> Estimate:
    """The monthly estimate for ``sites`` sites of ``per_site`` gateways of ``instance_type`` (a full mesh: with two
    per site, each gateway has a tunnel to both gateways of every other site)."""
    hourly = HOURLY.get(instance_type)
    gateways = sites * per_site
    tunnels_per_gateway = max(sites - 1, 0) * per_site
    metrics = gateways * tunnels_per_gateway * METRICS_PER_TUNNEL
    calls = gateways * math.ceil(tunnels_per_gateway * METRICS_PER_TUNNEL / METRICS_PER_CALL) if metrics else 0
    requests = calls * (HOURS_PER_MONTH * 3600 / PUBLISH_SECONDS) / 1000 * REQUESTS_PER_1000
    return Estimate(sites, instance_type, None if hourly is None else round(hourly * HOURS_PER_MONTH, 2),
                    round(PUBLIC_IPV4_HOURLY * HOURS_PER_MONTH, 2), round(GP3_GB_MONTH * ROOT_VOLUME_GB, 2),
                    round(metrics * METRIC_MONTH + requests, 2), BASELINE_MBIT.get(instance_type), per_site)
