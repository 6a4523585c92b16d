"""The records of a site with two gateways (docs/HA.md): per-gateway health, the active record, the planned switch.
Their names sit under the site's prefix, and ``down`` leaves none of them behind."""

from __future__ import annotations

from linker import naming
from linker.control.aws import Target
from linker.control.operations import Options, down_link, up_link
from linker.spec import LinkSpec
from tests.control.cloud import inventory, make_vpc

E, W = "us-east-1", "eu-west-1"
FAST = Options(poll=0.0, timeout=5.0)


def yes(_changes: object) -> bool:
    return True


def test_the_ha_records_are_named_under_the_site() -> None:
    assert naming.gateway_health_parameter("l", "s", "i-1") == "/linker/l/sites/s/gateways/i-1/health"
    assert naming.gateway_health_parameter("l", "s", "i-1").startswith(naming.gateways_prefix("l", "s"))
    assert naming.active_parameter("l", "s") == "/linker/l/sites/s/active"
    assert naming.switch_parameter("l", "s") == "/linker/l/sites/s/switch"


def test_down_removes_the_ha_records_too(aws) -> None:  # type: ignore[no-untyped-def]
    make_vpc(aws, E, "10.10.0.0/16", tables=1)
    make_vpc(aws, W, "10.20.0.0/16", tables=1)
    up_link(Target(), LinkSpec("ha", (E, W)), yes, options=FAST)
    written = []
    for region in (E, W):
        ssm = aws.client("ssm", region_name=region)
        for name in (naming.gateway_health_parameter("ha", region, "i-0aaaaaaaaaaaaaaa1"),
                     naming.gateway_health_parameter("ha", region, "i-0bbbbbbbbbbbbbbb2"),
                     naming.active_parameter("ha", region), naming.switch_parameter("ha", region)):
            ssm.put_parameter(Name=name, Value="{}", Type="String", Overwrite=True)
            written.append(name)
    assert set(written) <= {n for r in (E, W) for n in inventory(aws, "ha", [E, W])[r]["params"]}

    assert down_link(Target(), "ha", yes, options=FAST)
    after = inventory(aws, "ha", [E, W])
    assert after[E]["params"] == after[W]["params"] == []
