"""What lands on a gateway, rendered from templates/: valid, small, nothing secret, consistent with the agent."""

from __future__ import annotations

import fnmatch
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
    assert "Requires=linker-bootstrap.service" in unit
    assert "After=network-online.target linker-bootstrap.service" in unit
    assert ["systemctl", "enable", "linker-bootstrap.service", "linker-gateway.service"] in doc["runcmd"]
    assert doc["runcmd"][-1] == ["systemctl", "start", "--no-block", "linker-gateway.service"]
    boot = files["/etc/systemd/system/linker-bootstrap.service"]
    assert "Type=oneshot" in boot and "ExecStart=/usr/local/sbin/linker-bootstrap" in boot
    fetch = files["/usr/local/sbin/linker-bootstrap"]  # the install moved from runcmd to the retried bootstrap
    assert next(f for f in doc["write_files"] if f["path"] == "/usr/local/sbin/linker-bootstrap")["permissions"] == \
        "0755"
    assert "SOURCE='s3://linker-prod-eu-west-1-123456789012/wheels/ab12/linker-0.1.0.whl'" in fetch
    assert f"SHA256='{'ab12' * 16}'" in fetch and "PACKAGE=$WORK/'linker-0.1.0.whl'" in fetch
    assert 'echo "$SHA256  $PACKAGE" | sha256sum -c -' in fetch and "pip install --no-input --no-index" in fetch
    assert "PARAMETER='/linker/prod/sites/eu-west-1/bootstrap'" in fetch


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
    bootstrap = "arn:aws:ssm:eu-west-1:123456789012:parameter/linker/prod/sites/eu-west-1/bootstrap"
    assert fnmatch.fnmatchcase(bootstrap, statements["OwnSiteParameters"]["Resource"][0])  # its failure record
    assert statements["ControllerWheel"]["Resource"] == [
        "arn:aws:s3:::linker-prod-eu-west-1-123456789012/wheels/*"]
    assert all("*" not in a for s in statements.values() for a in s["Action"])


def test_a_missing_template_variable_is_an_error() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render("linker-gateway.service.tftpl", link="x", site="y", region="z")
