"""The agent's side of make before break: its own key first, the site's key once the membership names it, and
peers' keys of the instance the membership names (linker.control.rollout has the order)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from botocore.exceptions import ClientError

from linker import __version__, naming
from linker.contract import GatewayHealth, Membership, PublicKey
from linker.gateway.agent import Agent
from linker.gateway.cloud import Cloud
from linker.gateway.settings import AgentSettings
from linker.wg.keys import generate_private_key, public_key_of

OLD, NEW = (public_key_of(generate_private_key(os.urandom)) for _ in range(2))


def membership(gateway: str | None) -> Membership:
    sites = [{"site": r, "region": r, "eip": f"198.51.100.{i}", "cidrs": [f"10.{i}.0.0/16"], "port": 51820,
              **({"gateway": gateway} if gateway and r == "eu-west-1" else {})}
             for i, r in enumerate(["eu-west-1", "us-east-1"], start=1)]
    return Membership.from_json(json.dumps({"schema": 1, "link": "demo", "sites": sites}))


class FakeSsm:
    def __init__(self, params: dict[str, str]) -> None:
        self.params = params

    def get_parameter(self, Name: str) -> dict:
        if Name not in self.params:
            raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": "no"}}, "GetParameter")
        return {"Parameter": {"Value": self.params[Name]}}


def peer_keys(params: dict[str, str], gateway: str | None) -> dict[str, bytes]:
    cloud = Cloud("demo", "us-east-1", "us-east-1")
    cloud._ssm = {"eu-west-1": FakeSsm(params)}
    return cloud.peer_public_keys(membership(gateway))


def test_peers_use_the_key_of_the_instance_the_membership_names_else_the_sites() -> None:
    site_key = naming.public_key_parameter("demo", "eu-west-1")
    params = {site_key: PublicKey(OLD).to_text(),
              naming.gateway_key_parameter("demo", "eu-west-1", "i-new"): PublicKey(NEW).to_text()}
    assert peer_keys(params, None) == {"eu-west-1": OLD}  # a membership without gateways: the site's key
    assert peer_keys(params, "i-old") == {"eu-west-1": OLD}  # an agent before per-instance keys: the site's
    assert peer_keys(params, "i-new") == {"eu-west-1": NEW}  # the successor, once the membership names it
    assert peer_keys({}, "i-new") == {}


class RecordingCloud:
    def __init__(self, doc: Membership) -> None:
        self.doc, self.published = doc, []

    def publish_public_key(self, key: bytes, instance: str | None = None) -> None:
        self.published.append(instance or "site")

    def membership(self) -> Membership:
        return self.doc

    def peer_public_keys(self, membership: Membership, known: dict[str, bytes]) -> dict[str, bytes]:
        return {}


def agent(tmp_path: Path, doc: Membership, instance: str) -> tuple[Agent, RecordingCloud]:
    settings = AgentSettings("demo", "eu-west-1", "eu-west-1", state_dir=str(tmp_path), run_dir=str(tmp_path),
                             instance_id=instance)
    cloud = RecordingCloud(doc)
    a = Agent(settings, cloud)  # type: ignore[arg-type]
    a.private_key, a.instance_id = generate_private_key(os.urandom), instance
    return a, cloud


def test_a_successor_publishes_its_own_key_and_the_sites_only_once_named(tmp_path: Path) -> None:
    a, cloud = agent(tmp_path, membership("i-old"), "i-new")
    a._read_cloud()
    a._read_cloud()
    assert cloud.published == ["i-new"]  # ready, but peers of older agents keep the old gateway's key
    cloud.doc = membership("i-new")
    a._read_cloud()
    a._read_cloud()
    assert cloud.published == ["i-new", "site"]


def test_without_a_named_gateway_or_a_known_instance_the_site_key_is_published_at_once(tmp_path: Path) -> None:
    a, cloud = agent(tmp_path, membership(None), "i-new")  # Terraform, or a controller before per-instance keys
    a._read_cloud()
    assert cloud.published == ["i-new", "site"]
    a, cloud = agent(tmp_path, membership("i-old"), "")  # no metadata service: as agents were before
    a._read_cloud()
    assert cloud.published == ["site"]


def test_the_health_report_and_membership_carry_instance_and_version() -> None:
    health = GatewayHealth("demo", "eu-west-1", 1.0, (), "i-new", __version__)
    assert GatewayHealth.from_json(health.to_json()) == health
    old = GatewayHealth("demo", "eu-west-1", 1.0, ())
    assert "instance" not in json.loads(old.to_json()) and GatewayHealth.from_json(old.to_json()) == old
    assert Membership.from_json(membership("i-new").to_json()).site("eu-west-1").gateway == "i-new"  # type: ignore[union-attr]
    assert "gateway" not in membership(None).to_json()
