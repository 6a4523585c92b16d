"""Names shared by the controller, the templates and the gateway agent: tags and parameter paths.

AWS tags are linker's state: every resource a link makes carries ``linker:link``, ``linker:site`` and
``linker:managed-by``, and discovery is by these tags, never by Name.
"""

from __future__ import annotations

TAG_LINK = "linker:link"
TAG_SITE = "linker:site"
TAG_MANAGED_BY = "linker:managed-by"
TAG_ROLE = "linker:role"  # what the resource is for: eip, security-group, instance, role, ...
MANAGED_BY_LINKER = "linker"
MANAGED_BY_TERRAFORM = "terraform"

DEFAULT_LINK = "default"
DEFAULT_PORT = 51820
DEFAULT_MTU = 1420
INTERFACE = "linker0"


def parameter_prefix(link: str) -> str:
    """SSM Parameter Store path under which everything of ``link`` lives."""
    return f"/linker/{link}"


def membership_parameter(link: str) -> str:
    """JSON document of the link's sites (site, region, EIP, CIDRs, port), written by the controller."""
    return f"{parameter_prefix(link)}/membership"


def public_key_parameter(link: str, site: str) -> str:
    """The gateway of ``site`` publishes its WireGuard public key here (never the private key)."""
    return f"{parameter_prefix(link)}/sites/{site}/public-key"


def health_parameter(link: str, site: str) -> str:
    """The gateway of ``site`` publishes its tunnels' health here, for ``linker status``."""
    return f"{parameter_prefix(link)}/sites/{site}/health"


def base_tags(link: str, site: str, managed_by: str = MANAGED_BY_LINKER) -> dict[str, str]:
    return {TAG_LINK: link, TAG_SITE: site, TAG_MANAGED_BY: managed_by}
