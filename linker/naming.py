"""Names shared by the controller, the templates and the gateway agent: tags and parameter paths.

AWS tags are linker's state: every resource a link makes carries ``linker:link``, ``linker:site`` and
``linker:managed-by``, and discovery is by these tags, never by Name.
"""

from __future__ import annotations

from collections.abc import Iterable

from linker.wg.constants import DEFAULT_MTU as DEFAULT_MTU  # its one home; re-exported for the controller, agent

TAG_LINK = "linker:link"
TAG_SITE = "linker:site"
TAG_MANAGED_BY = "linker:managed-by"
TAG_ROLE = "linker:role"  # what the resource is for: eip, security-group, instance, role, ...
# on the second gateway of a site with two (``--ha``, docs/HA.md) and its EIP: "2". The first carries none, as a
# site's only gateway does, so that a site gains or loses its second gateway without replacing its first.
TAG_SLOT = "linker:slot"
SECOND_SLOT = "2"
MANAGED_BY_LINKER = "linker"
MANAGED_BY_TERRAFORM = "terraform"

DEFAULT_LINK = "default"
DEFAULT_PORT = 51820
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


def gateway_key_parameter(link: str, site: str, instance: str) -> str:
    """The gateway instance ``instance`` of ``site`` publishes its public key here once it is ready (bootstrapped,
    daemon and agent running): the controller waits for it before moving the site to that instance, and peers use
    the key of the instance the membership names, so that a replacement switches keys only when it takes over."""
    return f"{parameter_prefix(link)}/sites/{site}/gateways/{instance}/public-key"


def gateways_prefix(link: str, site: str) -> str:
    """Where the gateway instances of ``site`` publish their own records (``gateway_key_parameter``)."""
    return f"{parameter_prefix(link)}/sites/{site}/gateways/"


def health_parameter(link: str, site: str) -> str:
    """The gateway of ``site`` publishes its tunnels' health here, for ``linker status``."""
    return f"{parameter_prefix(link)}/sites/{site}/health"


def gateway_health_parameter(link: str, site: str, instance: str) -> str:
    """In a site with two gateways (docs/HA.md), each publishes its own health report here (carrying its role and
    last failover), so that the two do not overwrite each other's report at ``health_parameter``."""
    return f"{gateways_prefix(link, site)}{instance}/health"


def active_parameter(link: str, site: str) -> str:
    """The site's *active record* (docs/HA.md rule 6): written by the gateway the site's routes have just moved
    to; its SSM version is the epoch of that takeover."""
    return f"{parameter_prefix(link)}/sites/{site}/active"


def switch_parameter(link: str, site: str) -> str:
    """A planned switch of the site's active gateway (docs/HA.md rule 8), written by ``linker failover``."""
    return f"{parameter_prefix(link)}/sites/{site}/switch"


def bootstrap_parameter(link: str, site: str) -> str:
    """The bootstrap of ``site``'s gateway records each failed attempt and its outcome here, for ``linker status``."""
    return f"{parameter_prefix(link)}/sites/{site}/bootstrap"


def base_tags(link: str, site: str, managed_by: str = MANAGED_BY_LINKER) -> dict[str, str]:
    return {TAG_LINK: link, TAG_SITE: site, TAG_MANAGED_BY: managed_by}


# --- controller additions: names of the resources a link makes, derived from (link, site) only ---

TAG_CONFIG = "linker:config"  # on the instance: hash of what the spec decides of its launch (type, port, ...)
TAG_VERSION = "linker:version"  # on the instance: the linker version it runs (shown to people)
TAG_PACKAGE = "linker:package"  # on the instance: the bucket key of the wheelhouse it was installed from (the pin)
ROLE_EIP = "eip"
ROLE_SECURITY_GROUP = "security-group"
ROLE_INSTANCE = "instance"
ROLE_IAM_ROLE = "iam-role"
ROLE_INSTANCE_PROFILE = "instance-profile"
ROLE_BUCKET = "bucket"
IAM_PATH = "/linker/"
INLINE_POLICY = "linker-gateway"


RESOURCE_PREFIX = "linker-"


def resource_name(link: str, site: str) -> str:
    """Name of the site's security group, IAM role and instance profile (IAM names are global: include both)."""
    return f"{RESOURCE_PREFIX}{link}-{site}"


def lock_parameter(link: str) -> str:
    """The link's lock (JSON: owner, command, expiry), created atomically by ``up``/``down``."""
    return f"{parameter_prefix(link)}/lock"


def home_parameter(link: str) -> str:
    """The link's home region (where its lock lives), recorded in every region of the link (control/home.py)."""
    return f"{parameter_prefix(link)}/home"


def route_tag(link: str, cidr: str) -> str:
    """Tag key on a route table recording that linker added the route to ``cidr`` for ``link`` (value: the site).

    Routes cannot carry tags; the tag on their table is how linker knows which routes are its own, so that it
    never touches a route it did not make.
    """
    return f"linker:route:{link}:{cidr}"


def routes_tagged(link: str, tags: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{cidr: site} of ``link``'s route tags among a route table's (key, value) tags: ``route_tag`` read back."""
    prefix = route_tag(link, "")
    return {key[len(prefix):]: value for key, value in tags if key.startswith(prefix)}


def route_table_tag(link: str) -> str:
    """Tag key on a route table of a site with two gateways (``--ha``) whose routes linker manages for ``link``
    (value: the site). The gateways' role may move routes (ReplaceRoute, docs/HA.md) only in tables tagged so for
    its own link and site. A key per link: one table may hold routes of several links. It shares the
    ``linker:route:`` prefix of ``route_tag``, under which the controller may tag route tables, and never reads
    as a route (it has no ``:<cidr>``)."""
    return f"linker:route:{link}"


def bucket_name(link: str, site: str, account: str) -> str:
    """The site's S3 bucket (the controller's wheel for the gateway). Global names: account and site included."""
    return f"linker-{link}-{site}-{account}"
