"""What lands on a gateway, rendered from templates/: valid, small, nothing secret, consistent with the agent."""

from __future__ import annotations

import json
import os

import jinja2
import pytest
import yaml

from linker.control.render import GatewayInputs, render, role_policy, user_data
from linker.gateway.settings import AgentSettings
from linker.wg.keys import generate_private_key, to_base64

G = GatewayInputs(link="prod", site="eu-west-1", region="eu-west-1", port=51999,
                  package_bucket="linker-prod-eu-west-1-123456789012", package_key="wheels/ab12/linker-0.1.0.whl",
                  package_sha256="ab12" * 16)


def test_user_data_is_cloud_config_with_the_agent_settings_and_unit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = user_data(G)
    assert text.startswith("#cloud-config\n") and len(text.encode()) < 16 * 1024
    doc = yaml.safe_load(text)
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    settings_file = tmp_path / "agent.json"
    settings_file.write_text(files["/etc/linker/agent.json"])
    settings = AgentSettings.load(settings_file)  # the agent reads exactly what the controller writes
    assert (settings.link, settings.site, settings.region, settings.listen_port) == ("prod", "eu-west-1",
                                                                                    "eu-west-1", 51999)
    unit = files["/etc/systemd/system/linker-gateway.service"]
    assert "ExecStart=/opt/linker/bin/linker gateway run --config /etc/linker/agent.json" in unit
    assert ["systemctl", "enable", "--now", "linker-gateway.service"] in doc["runcmd"]
    fetch = next(c[2] for c in doc["runcmd"] if c[:2] == ["sh", "-c"])
    assert "s3://linker-prod-eu-west-1-123456789012/wheels/ab12/linker-0.1.0.whl" in fetch
    assert f"{'ab12' * 16}  /var/tmp/linker-0.1.0.whl\" | sha256sum -c -" in fetch


def test_no_key_material_in_any_artifact() -> None:
    key = to_base64(generate_private_key(os.urandom))  # no key is ever passed to the renderer
    for text in (user_data(G), role_policy(G)):
        assert key not in text and "PrivateKey" not in text and "aws_secret_access_key" not in text.lower()


def test_instance_role_reads_the_link_and_writes_only_its_own_site() -> None:
    statements = {s["Sid"]: s for s in json.loads(role_policy(G))["Statement"]}
    assert statements["OwnLinkParameters"]["Resource"] == ["arn:aws:ssm:*:*:parameter/linker/prod/*"]
    assert statements["OwnSiteParameters"]["Action"] == ["ssm:PutParameter"]
    assert statements["OwnSiteParameters"]["Resource"] == [
        "arn:aws:ssm:eu-west-1:*:parameter/linker/prod/sites/eu-west-1/*"]
    assert statements["ControllerWheel"]["Resource"] == [
        "arn:aws:s3:::linker-prod-eu-west-1-123456789012/wheels/*"]
    assert all("*" not in a for s in statements.values() for a in s["Action"])


def test_a_missing_template_variable_is_an_error() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("linker-gateway.service.tftpl", link="x", site="y", region="z")
