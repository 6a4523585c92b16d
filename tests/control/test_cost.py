"""What `plan` says a link costs: everything that grows with it, not only the instances."""

from __future__ import annotations

import pytest

from linker.control.cost import estimate


def test_two_sites_on_t3_micro_add_up_to_the_bill() -> None:
    e = estimate(2, "t3.micro")
    assert e.instance_monthly == 7.59 and e.ip_monthly == 3.65 and e.volume_monthly == 0.64
    # 2 gateways x 1 tunnel x 4 metrics at $0.30, plus one PutMetricData call per gateway every 30 s
    assert e.metrics_monthly == pytest.approx(2 * 4 * 0.30 + 2 * 87.6 * 0.01, abs=0.01)
    assert e.total == pytest.approx(2 * (7.59 + 3.65 + 0.64) + e.metrics_monthly, abs=0.01)
    line = e.line()
    assert "per GB between regions" in line and "64 Mbit/s" in line and "standard CPU credits" in line


def test_metrics_grow_with_the_square_of_the_sites() -> None:
    ten = estimate(10, "t3.micro")
    assert ten.metrics_monthly > 10 * (ten.instance_monthly or 0)  # 360 metrics: more than the instances
    assert ten.to_dict()["metrics_total"] == ten.metrics_monthly


def test_a_type_without_a_known_price_still_shows_what_is_known() -> None:
    e = estimate(3, "x9.huge")
    assert e.total is None and "no price known" in e.line() and e.to_dict()["cpu_credits"] is None
    assert estimate(2, "c6gn.medium").to_dict()["cpu_credits"] is None


def test_with_two_gateways_per_site_plan_shows_what_the_second_costs() -> None:
    one, two = estimate(2, "t3.micro"), estimate(2, "t3.micro", per_site=2)
    assert two.gateways == 4 and one.gateways == 2 and one.second_monthly == 0.0
    # 4 gateways, each with a tunnel to both gateways of the other site: 4 x 2 x 4 metrics
    assert two.metrics_monthly == pytest.approx(4 * 2 * 4 * 0.30 + 4 * 87.6 * 0.01, abs=0.01)
    assert two.total == pytest.approx(4 * (7.59 + 3.65 + 0.64) + two.metrics_monthly, abs=0.01)
    assert two.second_monthly == pytest.approx((two.total or 0) - (one.total or 0), abs=0.01)
    assert f"the second costs ${two.second_monthly:.2f}/month" in two.line() and "for 4 gateways" in two.line()
    assert two.to_dict()["gateways_per_site"] == 2 and two.to_dict()["second_gateways_monthly"] == two.second_monthly
    assert "second" not in one.line() and estimate(2, "x9.huge", 2).second_monthly is None
