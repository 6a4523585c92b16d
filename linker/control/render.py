"""Render what lands on a gateway from templates/ with jinja2 (StrictUndefined: a missing variable is an error).

Pure: the same inputs give the same bytes, so the instance's config hash (and whether it must be replaced) is a
function of the spec alone. Nothing rendered here may carry a secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from linker import __version__, naming
from linker.errors import SpecError

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"
USER_DATA_LIMIT = 16 * 1024  # EC2 rejects larger user-data (before base64)
METRIC_NAMESPACE = "Linker"  # the gateway agent's CloudWatch namespace (linker.gateway.health)


@dataclass(frozen=True)
class GatewayInputs:
    """Everything the gateway templates depend on."""

    link: str
    site: str
    region: str
    port: int
    package_bucket: str  # the site's bucket holding the controller's wheel (linker/control/package.py)
    package_key: str
    package_sha256: str
    mtu: int = naming.DEFAULT_MTU
    interface: str = naming.INTERFACE
    version: str = __version__
    agent_command: str = "/opt/linker/bin/linker"
    partition: str = "aws"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, autoescape=False)  # noqa: S701 (not HTML)


def render(name: str, **variables: object) -> str:
    """Render ``templates/<name>``; a variable the template uses but is not given raises."""
    return _env().get_template(name).render(**variables)


def agent_settings(g: GatewayInputs) -> str:
    """The agent's /etc/linker/agent.json (see linker.gateway.settings.AgentSettings)."""
    return json.dumps({"link": g.link, "site": g.site, "region": g.region, "listen_port": g.port, "mtu": g.mtu,
                       "interface": g.interface}, indent=2, sort_keys=True)


def service_unit(g: GatewayInputs) -> str:
    return render("linker-gateway.service.j2", link=g.link, site=g.site, region=g.region,
                  agent_command=g.agent_command)


def user_data(g: GatewayInputs) -> str:
    """cloud-init user-data of the site's gateway; refused when over EC2's 16 KB limit."""
    text = render("user-data.yaml.j2", link=g.link, site=g.site, region=g.region, version=g.version,
                  agent_settings=agent_settings(g), service_unit=service_unit(g), package_bucket=g.package_bucket,
                  package_key=g.package_key, package_file=g.package_key.rsplit("/", 1)[-1],
                  package_sha256=g.package_sha256)
    if len(text.encode()) >= USER_DATA_LIMIT:
        raise SpecError(f"the gateway user-data is {len(text.encode())} bytes, over EC2's limit of {USER_DATA_LIMIT}")
    return text


def role_policy(g: GatewayInputs) -> str:
    """The inline policy of the gateway's instance role, as canonical JSON."""
    doc = json.loads(render("instance-role-policy.json.j2", partition=g.partition, region=g.region,
                            package_bucket=g.package_bucket,
                            parameter_prefix=naming.parameter_prefix(g.link),
                            site_prefix=f"{naming.parameter_prefix(g.link)}/sites/{g.site}",
                            metric_namespace=METRIC_NAMESPACE))
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def assume_role_policy() -> str:
    """Trust policy: only EC2 may assume the gateway role."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
        sort_keys=True, separators=(",", ":"))
