"""Render what lands on a gateway from linker/templates/ (jinja2 with Terraform's semantics, StrictUndefined).

The Terraform module (terraform/modules/gateway-config) renders the very same files with ``templatefile`` and the
same variables (linker/control/tftemplate.py says which syntax both engines read alike; tests/terraform proves the
results equal). Pure: the same inputs give the same bytes, so the instance's config hash (and whether it must be
replaced) is a function of the spec alone. Nothing rendered here may carry a secret. The templates are package
data of linker (read through importlib.resources), so an installed linker renders without its checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from linker import __version__, naming
from linker.control.tftemplate import render_file
from linker.errors import SpecError

# a directory of the installed package (linker is installed as files, never zipped: jinja2 reads them by path)
TEMPLATES = Path(str(resources.files("linker").joinpath("templates")))
USER_DATA_LIMIT = 16 * 1024  # EC2 rejects larger user-data (before base64)
METRIC_NAMESPACE = "Linker"  # the gateway agent's CloudWatch namespace (linker.gateway.health)
AGENT_COMMAND = "/opt/linker/bin/linker"  # where the bootstrap installs linker on the gateway
BOOTSTRAP_COMMAND = "/usr/local/sbin/linker-bootstrap"  # the bootstrap script the user-data writes


@dataclass(frozen=True)
class GatewayInputs:
    """Everything the gateway templates depend on (the Terraform module's gateway-config takes the same)."""

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
    agent_command: str = AGENT_COMMAND
    partition: str = "aws"
    ha: bool = False  # a site with two gateways (``--ha``): they may move the site's routes (docs/HA.md)


def render(name: str, **variables: object) -> str:
    """Render ``linker/templates/<name>``; a variable the template uses and is not given raises UndefinedError."""
    return render_file(TEMPLATES, name, variables)


def agent_settings(g: GatewayInputs) -> str:
    """The agent's /etc/linker/agent.json (see linker.gateway.settings.AgentSettings)."""
    return render("agent.json.tftpl", link=g.link, site=g.site, region=g.region, listen_port=g.port, mtu=g.mtu,
                  interface=g.interface)


def service_unit(g: GatewayInputs) -> str:
    return render("linker-gateway.service.tftpl", link=g.link, site=g.site, region=g.region,
                  agent_command=g.agent_command)


def bootstrap_unit(g: GatewayInputs) -> str:
    """linker-bootstrap.service: the oneshot that runs the bootstrap script (the agent's unit requires it)."""
    return render("linker-bootstrap.service.tftpl", link=g.link, site=g.site, region=g.region,
                  bootstrap_command=BOOTSTRAP_COMMAND)


def bootstrap_script(g: GatewayInputs) -> str:
    """The bootstrap script: installs the gateway from its wheelhouse, retrying, and records each outcome in
    ``naming.bootstrap_parameter`` (the document of ``linker.contract.BootstrapReport``)."""
    return render("linker-bootstrap.sh.tftpl", link=g.link, site=g.site, region=g.region,
                  bootstrap_parameter=naming.bootstrap_parameter(g.link, g.site), package_bucket=g.package_bucket,
                  package_key=g.package_key, package_file=g.package_key.rsplit("/", 1)[-1],
                  package_sha256=g.package_sha256)


def user_data(g: GatewayInputs) -> str:
    """cloud-init user-data of the site's gateway; refused when over EC2's 16 KB limit."""
    text = render("user-data.yaml.tftpl", link=g.link, site=g.site, region=g.region, version=g.version,
                  agent_settings=agent_settings(g), service_unit=service_unit(g), bootstrap_unit=bootstrap_unit(g),
                  bootstrap_script=bootstrap_script(g), bootstrap_command=BOOTSTRAP_COMMAND)
    if len(text.encode()) >= USER_DATA_LIMIT:
        raise SpecError(f"the gateway user-data is {len(text.encode())} bytes, over EC2's limit of {USER_DATA_LIMIT}",
                        fix="shorten the link name; the templates themselves are far below the limit")
    return text


def role_policy(g: GatewayInputs) -> str:
    """The inline policy of the gateway's instance role, as canonical JSON.

    With two gateways per site (``g.ha``) it also holds instance-role-policy-ha.json.tftpl's statements: read the
    route tables, and move routes (ReplaceRoute) only in the tables tagged ``naming.route_table_tag`` for this
    link and site, so that a compromised gateway cannot redirect another VPC's or another link's traffic. The
    records a failover writes (the site's active record, each gateway's health under ``gateways/<instance>/``)
    are under the site's prefix, which the gateway may already write in its own region."""
    prefix = naming.parameter_prefix(g.link)
    doc = json.loads(render("instance-role-policy.json.tftpl", partition=g.partition, region=g.region,
                            package_bucket=g.package_bucket, parameter_prefix=prefix,
                            site_prefix=f"{prefix}/sites/{g.site}", metric_namespace=METRIC_NAMESPACE))
    if g.ha:
        doc["Statement"] += json.loads(render("instance-role-policy-ha.json.tftpl", partition=g.partition,
                                              region=g.region, route_table_tag=naming.route_table_tag(g.link),
                                              site=g.site))["Statement"]
    return canonical_json(json.dumps(doc))


def assume_role_policy() -> str:
    """Trust policy: only EC2 may assume the gateway role."""
    return canonical_json(render("instance-trust-policy.json.tftpl"))


def canonical_json(text: str) -> str:
    """A JSON document with sorted keys and no spaces: how policies are compared with what IAM holds."""
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
