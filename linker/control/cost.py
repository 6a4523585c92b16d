"""A rough monthly cost estimate of a link's gateways: on-demand instance hours plus the public IPv4 charge.

Prices are us-east-1 on-demand list prices in USD (other regions differ by a few tens of percent); the estimate
says so. Data transfer is not included: it depends on the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730
PUBLIC_IPV4_HOURLY = 0.005  # every public IPv4 address, Elastic IPs included
HOURLY = {
    "t3.nano": 0.0052, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416,
    "t3a.nano": 0.0047, "t3a.micro": 0.0094, "t3a.small": 0.0188,
    "t4g.nano": 0.0042, "t4g.micro": 0.0084, "t4g.small": 0.0168, "t4g.medium": 0.0336,
    "c6gn.medium": 0.0432, "c6gn.large": 0.0864, "c5n.large": 0.108, "c7gn.medium": 0.0624,
    "m5.large": 0.096, "m6g.medium": 0.0385, "m7g.medium": 0.0408,
}


@dataclass(frozen=True)
class Estimate:
    sites: int
    instance_type: str
    instance_monthly: float | None  # None: no price known for the type
    ip_monthly: float

    @property
    def total(self) -> float | None:
        if self.instance_monthly is None:
            return None
        return round(self.sites * (self.instance_monthly + self.ip_monthly), 2)

    def to_dict(self) -> dict[str, object]:
        return {"sites": self.sites, "instance_type": self.instance_type, "currency": "USD",
                "instance_per_site": self.instance_monthly, "public_ip_per_site": self.ip_monthly,
                "monthly_total": self.total, "basis": "us-east-1 on-demand list prices; data transfer not included"}

    def line(self) -> str:
        if self.total is None:
            return (f"estimated cost: no price known for {self.instance_type}; public IPs "
                    f"${self.sites * self.ip_monthly:.2f}/month")
        return (f"estimated cost: ${self.total:.2f}/month for {self.sites} gateways ({self.instance_type} "
                f"${self.instance_monthly:.2f} + public IP ${self.ip_monthly:.2f} each; us-east-1 on-demand prices, "
                "data transfer not included)")


def estimate(sites: int, instance_type: str) -> Estimate:
    """The monthly estimate for ``sites`` gateways of ``instance_type``."""
    hourly = HOURLY.get(instance_type)
    return Estimate(sites, instance_type, None if hourly is None else round(hourly * HOURS_PER_MONTH, 2),
                    round(PUBLIC_IPV4_HOURLY * HOURS_PER_MONTH, 2))
