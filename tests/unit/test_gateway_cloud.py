"""What the agent reads from AWS when part of AWS is away: one unreachable region does not hold back the others."""

from __future__ import annotations

import json
import os

from botocore.exceptions import ClientError, EndpointConnectionError

from linker import naming
from linker.contract import Membership
from linker.gateway.cloud import Cloud
from linker.wg.keys import generate_private_key, public_key_of, to_base64

KEYS = {site: public_key_of(generate_private_key(os.urandom)) for site in ("eu-west-1", "ap-south-1", "sa-east-1")}


class FakeSsm:
    def __init__(self, region: str, down: bool = False) -> None:
        self.region, self.down = region, down

    def get_parameter(self, Name: str) -> dict:
        if self.down:
            raise EndpointConnectionError(endpoint_url=f"https://ssm.{self.region}.amazonaws.com")
        site = Name.split("/")[-2]
        if site == "sa-east-1":
            raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": "not yet"}}, "GetParameter")
        assert Name == naming.public_key_parameter("demo", site)
        return {"Parameter": {"Value": to_base64(KEYS[site])}}


def membership() -> Membership:
    sites = [{"site": r, "region": r, "eip": f"198.51.100.{i}", "cidrs": [f"10.{i}.0.0/16"], "port": 51820}
             for i, r in enumerate(["ap-south-1", "eu-west-1", "sa-east-1", "us-east-1"], start=1)]
    return Membership.from_json(json.dumps({"schema": 1, "link": "demo", "sites": sites}))


def cloud(down: set[str]) -> Cloud:
    c = Cloud("demo", "us-east-1", "us-east-1")
    c._ssm = {r: FakeSsm(r, r in down) for r in ("us-east-1", "eu-west-1", "ap-south-1", "sa-east-1")}
    return c


def test_all_reachable() -> None:
    assert cloud(set()).peer_public_keys(membership()) == {s: KEYS[s] for s in ("eu-west-1", "ap-south-1")}


def test_an_unreachable_region_keeps_its_last_known_key_and_the_others_are_read(caplog) -> None:  # type: ignore[no-untyped-def]
    stale = {"eu-west-1": KEYS["eu-west-1"], "ap-south-1": b"\x01" * 32}
    keys = cloud({"eu-west-1"}).peer_public_keys(membership(), stale)
    assert keys == {"eu-west-1": KEYS["eu-west-1"], "ap-south-1": KEYS["ap-south-1"]}  # ap-south-1 read afresh
    assert "keeping the last known one" in caplog.text


def test_an_unreachable_region_never_seen_is_skipped_for_now() -> None:
    assert cloud({"eu-west-1"}).peer_public_keys(membership(), {}) == {"ap-south-1": KEYS["ap-south-1"]}
