"""A 20-region link against moto: plan and up make it, every region's membership lists the 20 sites, the health
reports of 20 agents (19 tunnels each) are stored within SSM's standard tier and read back by status; down
removes it all."""

from __future__ import annotations

import time

from linker import naming
from linker.contract import STANDARD_TIER_BYTES, GatewayHealth, Membership, TunnelHealth
from linker.control.aws import Target
from linker.control.changes import Kind
from linker.control.operations import Options, down_link, plan_link, status_link, up_link
from linker.gateway.cloud import Cloud
from linker.spec import LinkSpec
from tests.control.cloud import make_vpc

REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "eu-west-1", "eu-west-2", "eu-west-3",
           "eu-central-1", "eu-north-1", "eu-south-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
           "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "sa-east-1", "me-south-1", "af-south-1")
LINK = "twenty"


def test_a_20_region_link_is_planned_made_and_its_documents_read_back(aws) -> None:  # type: ignore[no-untyped-def]
    assert len(REGIONS) == 20
    for i, region in enumerate(REGIONS):
        make_vpc(aws, region, f"10.{i + 1}.0.0/16", tables=1)
    spec = LinkSpec(LINK, REGIONS)
    planned = plan_link(Target(), spec)
    assert sum(c.kind == Kind.INSTANCE for c in planned) == 20
    assert up_link(Target(), spec, lambda _: True, options=Options(poll=0.0, timeout=30.0))

    for region in REGIONS:
        param = aws.client("ssm", region_name=region).get_parameter(Name=naming.membership_parameter(LINK))
        text = param["Parameter"]["Value"]
        assert len(text.encode()) <= STANDARD_TIER_BYTES and param["Parameter"].get("Tier", "Standard") != "Advanced"
        membership = Membership.from_json(text)
        assert membership.site_names() == tuple(sorted(REGIONS)) and all(s.eip for s in membership.sites)

    now = time.time()
    for region in REGIONS:  # what each gateway's agent publishes
        tunnels = tuple(TunnelHealth(p.site, None, p.endpoint(), now - 7.5, 7.5, 123456789012, 98765432109, True)
                        for p in membership.peers_of(region))
        Cloud(LINK, region, region).publish_health(GatewayHealth(LINK, region, now, tunnels))
        stored = aws.client("ssm", region_name=region).get_parameter(Name=naming.health_parameter(LINK, region))
        assert len(stored["Parameter"]["Value"].encode()) <= STANDARD_TIER_BYTES

    gateways = status_link(Target(), LINK, REGIONS)
    assert sorted(g.site for g in gateways) == sorted(REGIONS)
    assert all(g.healthy() and len(g.health.tunnels) == 19 for g in gateways)  # type: ignore[union-attr]

    assert down_link(Target(), LINK, lambda _: True, regions=REGIONS, options=Options(poll=0.0, timeout=30.0))
    for region in REGIONS:
        assert aws.client("ssm", region_name=region).get_parameters_by_path(
            Path=naming.parameter_prefix(LINK), Recursive=True)["Parameters"] == []
