"""The documents the controller and the gateways exchange through SSM Parameter Store: typed, frozen, versioned.

Three documents, one writer each:

- ``Membership`` (``naming.membership_parameter``): written by the controller (or Terraform) in every region of the
  link, read by every gateway agent. JSON with ``"schema": 1``.
- ``PublicKey`` (``naming.public_key_parameter``): written by each gateway agent, read by its peers. The bare
  base64 key, as ``wg pubkey`` prints it; a single value, so it carries no version.
- ``GatewayHealth`` (``naming.health_parameter``): written by each gateway agent, read by ``linker status``. JSON
  with ``"schema": 1``; reports of agents older than the field carry none and read as version 1. Stored compact
  (``to_document``), so that a 20-site link's reports fit SSM's standard tier.

In a site with two gateways (docs/HA.md) also two small records: the site's *active record*
(``naming.active_parameter``, written by the gateway the routes moved to; its SSM version is the epoch) and a
*planned switch* (``naming.switch_parameter``, written by ``linker failover``, read by the site's gateways).

Both halves import this module and nothing else to read or write these documents, so their formats cannot drift.
A reader refuses a document of a newer schema (``ContractVersionError``: upgrade this side) and a malformed one
(``ContractError``), naming the document and the problem. Ground floor: imports the standard library and
``linker.errors`` only. Everything here is an immutable value and thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from linker.errors import ContractError, ContractVersionError

MEMBERSHIP_SCHEMA = 1
HEALTH_SCHEMA = 1
STANDARD_TIER_BYTES = 4096  # SSM Parameter Store's standard tier (free) holds values up to 4 KB
_DERIVED_TUNNEL_FIELDS = ("endpoint", "public_key")  # left out of the stored health report (``to_document``)
KEY_LEN = 32  # a Curve25519 public key, as linker.wg.constants.KEY_LEN (the ground floor does not import wg)

T = TypeVar("T")


# --- reading helpers: each raises ContractError naming the document and the field ---

def _loads(text: str | bytes, document: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:
        raise ContractError(f"the {document} document is not JSON: {exc}") from None


def _object(value: Any, document: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ContractError(f"the {document} document is malformed: {where} is not a JSON object")
    return value


def _field(obj: Mapping[str, Any], key: str, check: Callable[[Any], T], document: str, where: str,
           required: bool = True) -> T:
    """``check(obj[key])``; a missing key is None when not ``required``."""
    if key not in obj and required:
        raise ContractError(f"the {document} document is malformed: {where} has no {key!r}")
    try:
        return check(obj.get(key))
    except ContractError:
        raise
    except (ValueError, TypeError) as exc:
        raise ContractError(f"the {document} document is malformed: {where}.{key}: {exc}") from None


def _schema(obj: Mapping[str, Any], supported: int, document: str, default: int | None = None) -> int:
    version = obj.get("schema", default)
    if version is None:
        raise ContractError(f"the {document} document is malformed: it has no 'schema'")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ContractError(f"the {document} document is malformed: schema {version!r} is not a version number")
    if version > supported:
        raise ContractVersionError(
            f"the {document} document has schema {version}, written by a newer linker; this one reads schema "
            f"{supported} at most",
            fix="upgrade linker on this side (the controller's `pip install -U linker`, or re-run `linker up` "
                "with the newer linker so that the gateways are replaced)")
    return version


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    return value


def _count(value: Any) -> int:
    if _int(value) < 0:
        raise ValueError(f"{value!r} is negative")
    return int(value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def _optional(check: Callable[[Any], T]) -> Callable[[Any], T | None]:
    return lambda value: None if value is None else check(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{value!r} is not a list")
    return value


# --- membership ---

def _port(value: Any) -> int:
    port = _int(value)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return port


def _ip(value: Any) -> str:
    return str(ipaddress.ip_address(_str(value)))


def _cidrs(value: Any) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_network(_str(c))) for c in _list(value))


def _zone(value: Any) -> str:
    return _str(value)


@dataclass(frozen=True)
class GatewayEntry:
    """One gateway of a site with two (docs/HA.md): its instance, availability zone, Elastic IP (None until
    allocated) and tunnel address (its primary private IPv4 in the site's VPC; None until the instance exists).

    Stored as a list, ``[instance, az, eip, tunnel]``, rather than an object: a 20-site link lists 40 of them and
    the document must stay in SSM's standard tier (``linker.control.membership_doc.check_size``)."""

    instance: str
    az: str
    eip: str | None
    tunnel: str | None

    def endpoint(self, port: int) -> str | None:
        """``host:port`` of this gateway, IPv6 in brackets; None while its address is unknown."""
        return _endpoint(self.eip, port)

    def to_list(self) -> list[Any]:
        return [self.instance, self.az, self.eip, self.tunnel]

    @classmethod
    def from_list(cls, value: Any, where: str) -> GatewayEntry:
        """Raises ContractError when ``value`` is not ``[instance, az, eip or null, tunnel or null]``."""
        doc = "membership"
        if not isinstance(value, list) or len(value) != 4:
            raise ContractError(f"the {doc} document is malformed: {where} is not [instance, az, eip, tunnel]")
        try:
            return cls(_str(value[0]), _zone(value[1]), _optional(_ip)(value[2]), _optional(_ip)(value[3]))
        except (ValueError, TypeError) as exc:
            raise ContractError(f"the {doc} document is malformed: {where}: {exc}") from None


def _endpoint(eip: str | None, port: int) -> str | None:
    if not eip:
        return None
    host = f"[{eip}]" if ":" in eip else eip
    return f"{host}:{port}"


@dataclass(frozen=True)
class SiteEntry:
    """One site of the link: its gateway's region, public address (None until allocated), CIDRs and port, and the
    instance that serves it (``gateway``: peers use that instance's own key; None from a controller or Terraform
    that does not name one: peers use the site's key).

    A site with two gateways (``ha``, docs/HA.md) also lists both in ``gateways``, ordered by instance id; its
    ``eip`` and ``gateway`` then name the one the site's routes pointed at when the controller wrote it (the lower
    id for a new site), so that an agent older than HA (which reads those two fields only) peers with it. A site
    with one gateway has neither ``ha`` nor ``gateways`` and reads and writes as before."""

    site: str
    region: str
    eip: str | None  # None until the controller allocated it: gateways skip such a peer until it is known
    cidrs: tuple[str, ...]
    port: int
    gateway: str | None = None
    ha: bool = False
    gateways: tuple[GatewayEntry, ...] = ()

    def endpoint(self) -> str | None:
        """``host:port`` of the site's gateway, IPv6 in brackets; None while its address is unknown."""
        return _endpoint(self.eip, self.port)

    def gateway_entry(self, instance: str) -> GatewayEntry | None:
        """The entry of ``instance`` among the site's gateways; None when it is not one of them."""
        return next((g for g in self.gateways if g.instance == instance), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"site": self.site, "region": self.region, "eip": self.eip,
                               "cidrs": list(self.cidrs), "port": self.port}
        if self.gateway is not None:  # absent rather than null: documents without one read as before
            out["gateway"] = self.gateway
        if self.ha:  # likewise: a site with one gateway is written as before HA
            out["ha"] = True
        if self.gateways:
            out["gateways"] = [g.to_list() for g in self.gateways]
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str = "a site") -> SiteEntry:
        """Raises ContractError when ``obj`` is not a valid site entry."""
        doc = "membership"
        obj = _object(obj, doc, where)
        site = _field(obj, "site", _str, doc, where)
        where = f"site {site!r}"
        listed = _field(obj, "gateways", _optional(_list), doc, where, False) or []
        gateways = tuple(GatewayEntry.from_list(g, f"{where}.gateways[{i}]") for i, g in enumerate(listed))
        if len({g.instance for g in gateways}) != len(gateways):
            raise ContractError(f"the {doc} document is malformed: {where} lists a gateway twice")
        return cls(site, _field(obj, "region", _str, doc, where), _field(obj, "eip", _optional(_ip), doc, where, False),
                   _field(obj, "cidrs", _cidrs, doc, where), _field(obj, "port", _port, doc, where),
                   _field(obj, "gateway", _optional(_str), doc, where, False),
                   bool(_field(obj, "ha", _optional(_bool), doc, where, False)), gateways)


@dataclass(frozen=True)
class Membership:
    """The link's sites: which exist, where their gateways are, what they route. Nothing secret is in it."""

    link: str
    sites: tuple[SiteEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": MEMBERSHIP_SCHEMA, "link": self.link, "sites": [s.to_dict() for s in self.sites]}

    def to_json(self) -> str:
        """The document as written to SSM (keys sorted, so equal memberships are equal strings)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, obj: Any) -> Membership:
        """Raises ContractVersionError for a newer schema, ContractError for anything else malformed."""
        doc = "membership"
        obj = _object(obj, doc, "the document")
        _schema(obj, MEMBERSHIP_SCHEMA, doc)
        link = _field(obj, "link", _str, doc, "the document")
        entries = _field(obj, "sites", _list, doc, "the document")
        sites = tuple(SiteEntry.from_dict(e, f"sites[{i}]") for i, e in enumerate(entries))
        names = [s.site for s in sites]
        if len(set(names)) != len(names):
            raise ContractError(f"the membership document is malformed: a site is listed twice ({names})")
        return cls(link, sites)

    @classmethod
    def from_json(cls, text: str | bytes) -> Membership:
        """Raises ContractVersionError for a newer schema, ContractError for anything else malformed."""
        return cls.from_dict(_loads(text, "membership"))

    def site(self, name: str) -> SiteEntry | None:
        return next((s for s in self.sites if s.site == name), None)

    def site_names(self) -> tuple[str, ...]:
        return tuple(s.site for s in self.sites)

    def peers_of(self, own_site: str) -> list[SiteEntry]:
        """Every site but ``own_site``, in document order."""
        return [s for s in self.sites if s.site != own_site]


# --- public keys ---

@dataclass(frozen=True)
class PublicKey:
    """A gateway's WireGuard public key, published as bare base64 (44 characters, as ``wg pubkey`` prints)."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_LEN:
            raise ContractError(f"a public key is {KEY_LEN} bytes, not {len(self.key)}")

    def to_text(self) -> str:
        return base64.b64encode(self.key).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        """Raises ContractError when ``text`` is not a base64 32-byte key."""
        text = text.strip()
        try:
            if len(text) != 44 or not text.endswith("="):
                raise ValueError
            return cls(base64.b64decode(text, validate=True))
        except (ValueError, binascii.Error):
            raise ContractError(f"the public key document is malformed: not a base64 {KEY_LEN}-byte key") from None


# --- health ---

@dataclass(frozen=True)
class TunnelHealth:
    """One tunnel as its gateway sees it: healthy when the last handshake is recent."""

    peer_site: str
    public_key: str | None  # base64, None when the peer has not published one
    endpoint: str | None
    last_handshake: float | None  # wall-clock seconds
    handshake_age: float | None  # seconds; None: never
    rx_bytes: int
    tx_bytes: int
    healthy: bool

    def to_dict(self) -> dict[str, Any]:
        return {"peer_site": self.peer_site, "public_key": self.public_key, "endpoint": self.endpoint,
                "last_handshake": self.last_handshake, "handshake_age": self.handshake_age,
                "rx_bytes": self.rx_bytes, "tx_bytes": self.tx_bytes, "healthy": self.healthy}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "a tunnel") -> TunnelHealth:
        """Raises ContractError when ``obj`` is not a valid tunnel report."""
        doc = "health"
        obj = _object(obj, doc, where)
        peer = _field(obj, "peer_site", _str, doc, where)
        where = f"the tunnel to {peer!r}"
        return cls(peer, _field(obj, "public_key", _optional(_str), doc, where, False),
                   _field(obj, "endpoint", _optional(_str), doc, where, False),
                   _field(obj, "last_handshake", _optional(_number), doc, where),
                   _field(obj, "handshake_age", _optional(_number), doc, where),
                   _field(obj, "rx_bytes", _count, doc, where), _field(obj, "tx_bytes", _count, doc, where),
                   _field(obj, "healthy", _bool, doc, where))


ROLES = ("active", "standby")  # of a gateway in a site with two (docs/HA.md)
MAX_REASON = 200  # characters of a failover's reason: the report must still fit SSM's standard tier


def _role(value: Any) -> str:
    if value not in ROLES:
        raise ValueError(f"{value!r} is not one of {', '.join(ROLES)}")
    return str(value)


def _reason(value: Any) -> str:
    if len(_str(value)) > MAX_REASON:
        raise ValueError(f"a reason is at most {MAX_REASON} characters")
    return str(value)


@dataclass(frozen=True)
class FailoverRecord:
    """A gateway's last takeover (docs/HA.md): when (wall-clock seconds), why, which instance was active before
    (None when none was), and ``gap``, the seconds traffic was cut as the gateway estimates it (from the previous
    active's last sign of life to the first announcement; None when unknown, and for a planned switch)."""

    at: float
    reason: str
    previous: str | None = None
    gap: float | None = None

    def __post_init__(self) -> None:
        if len(self.reason) > MAX_REASON:  # the writer's reasons are short: a long one is a bug, kept loud
            raise ValueError(f"a failover's reason is at most {MAX_REASON} characters")

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "reason": self.reason, "previous": self.previous, "gap": self.gap}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "last_failover") -> FailoverRecord:
        """Raises ContractError when ``obj`` is not a valid failover record."""
        doc = "health"
        obj = _object(obj, doc, where)
        gap = _field(obj, "gap", _optional(_number), doc, where, False)
        if gap is not None and gap < 0:
            raise ContractError(f"the {doc} document is malformed: {where}.gap is negative")
        return cls(_field(obj, "at", _number, doc, where), _field(obj, "reason", _reason, doc, where),
                   _field(obj, "previous", _optional(_str), doc, where, False), gap)


@dataclass(frozen=True)
class GatewayHealth:
    """What a gateway agent last reported about its tunnels, and which instance and linker version reported it
    (None from agents older than these fields, or that do not know their instance). In a site with two gateways
    (docs/HA.md), ``role`` is "active" or "standby" and ``last_failover`` its last takeover; None from agents
    older than these fields, or of a site with one gateway."""

    link: str
    site: str
    reported_at: float  # wall-clock seconds
    tunnels: tuple[TunnelHealth, ...]
    instance: str | None = None
    version: str | None = None
    role: str | None = None  # one of ROLES
    last_failover: FailoverRecord | None = None

    @property
    def healthy(self) -> bool:
        """Every tunnel is healthy (vacuously true without tunnels: ``linker status`` also wants some)."""
        return all(t.healthy for t in self.tunnels)

    def to_dict(self) -> dict[str, Any]:
        out = {"schema": HEALTH_SCHEMA, "link": self.link, "site": self.site, "reported_at": self.reported_at,
               "healthy": self.healthy, "tunnels": [t.to_dict() for t in self.tunnels]}
        out.update({k: v for k, v in (("instance", self.instance), ("version", self.version), ("role", self.role))
                    if v is not None})
        if self.last_failover is not None:  # absent rather than null, as the fields above: older readers skip it
            out["last_failover"] = self.last_failover.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_document(self) -> str:
        """The report as the agent stores it in SSM: schema 1, compact, each tunnel without its ``endpoint`` and
        ``public_key`` (the membership and the peer's key parameter hold both; readers have always taken them as
        optional). So a 19-tunnel report is about 3 KB and fits SSM's free standard tier (``STANDARD_TIER_BYTES``)
        where ``to_json`` is about 5 KB (tests/unit/test_document_sizes.py)."""
        doc = self.to_dict()
        doc["tunnels"] = [{k: v for k, v in t.items() if k not in _DERIVED_TUNNEL_FIELDS} for t in doc["tunnels"]]
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, obj: Any) -> GatewayHealth:
        """Raises ContractVersionError for a newer schema, ContractError for anything else malformed.

        A report without ``schema`` is version 1 (agents wrote none before the field existed); its ``healthy``
        is derived again from the tunnels, as it always was."""
        doc = "health"
        obj = _object(obj, doc, "the document")
        _schema(obj, HEALTH_SCHEMA, doc, default=1)
        where = "the document"
        tunnels = _field(obj, "tunnels", _list, doc, where)
        return cls(_field(obj, "link", _str, doc, where), _field(obj, "site", _str, doc, where),
                   _field(obj, "reported_at", _number, doc, where),
                   tuple(TunnelHealth.from_dict(t, f"tunnels[{i}]") for i, t in enumerate(tunnels)),
                   _field(obj, "instance", _optional(_str), doc, where, False),
                   _field(obj, "version", _optional(_str), doc, where, False),
                   _field(obj, "role", _optional(_role), doc, where, False),
                   None if obj.get("last_failover") is None else FailoverRecord.from_dict(obj["last_failover"]))

    @classmethod
    def from_json(cls, text: str | bytes) -> GatewayHealth:
        """Raises ContractVersionError for a newer schema, ContractError for anything else malformed."""
        return cls.from_dict(_loads(text, "health"))


# --- bootstrap ---

BOOTSTRAP_SCHEMA = 1
BOOTSTRAP_STATES = ("retrying", "failed", "succeeded")


def _bootstrap_state(value: Any) -> str:
    if value not in BOOTSTRAP_STATES:
        raise ValueError(f"{value!r} is not one of {', '.join(BOOTSTRAP_STATES)}")
    return str(value)


@dataclass(frozen=True)
class BootstrapReport:
    """What a gateway's bootstrap (templates/linker-bootstrap.sh.tftpl, a shell script: it writes this JSON
    itself) last recorded in ``naming.bootstrap_parameter``: after each failed attempt (``retrying``), when it gave
    up (``failed``) and when the gateway was installed (``succeeded``). JSON with ``"schema": 1``."""

    link: str
    site: str
    instance: str  # the instance id as cloud-init knows it ("unknown" when it could not be read)
    state: str  # one of BOOTSTRAP_STATES
    step: str | None  # the step that failed (packages, venv, download, verify, unpack, install); None on success
    exit_code: int
    attempt: int  # 1 for the first attempt
    at: float  # wall-clock seconds
    retry_in: float | None  # seconds until the next attempt; None when none follows
    output: str  # the failed step's last lines of output

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    def reason(self) -> str:
        """The failed step's last line of output, or its exit code when it printed nothing."""
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit code {self.exit_code}"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": BOOTSTRAP_SCHEMA, "link": self.link, "site": self.site, "instance": self.instance,
                "state": self.state, "step": self.step, "exit_code": self.exit_code, "attempt": self.attempt,
                "at": self.at, "retry_in": self.retry_in, "output": self.output}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, obj: Any) -> BootstrapReport:
        """Raises ContractVersionError for a newer schema, ContractError for anything else malformed."""
        doc, where = "bootstrap", "the document"
        obj = _object(obj, doc, where)
        _schema(obj, BOOTSTRAP_SCHEMA, doc)
        state = _field(obj, "state", _bootstrap_state, doc, where)
        attempt = _field(obj, "attempt", _count, doc, where)
        return cls(_field(obj, "link", _str, doc, where), _field(obj, "site", _str, doc, where),
                   _field(obj, "instance", _str, doc, where), state,
                   _field(obj, "step", _optional(_str), doc, where, False), _field(obj, "exit_code", _int, doc, where),
                   attempt, _field(obj, "at", _number, doc, where),
                   _field(obj, "retry_in", _optional(_number), doc, where, False),
                   _field(obj, "output", lambda v: "" if v is None else _text(v), doc, where, False))

    @classmethod
    def from_json(cls, text: str | bytes) -> BootstrapReport:
        """Raises ContractVersionError for a newer schema, ContractError for anything else malformed."""
        return cls.from_dict(_loads(text, "bootstrap"))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


# --- a site with two gateways: the active record and the planned switch (docs/HA.md rules 6 and 8) ---

def active_record_value(instance: str) -> str:
    """The active record's value: JSON naming the instance (the epoch is the parameter's version, not a field)."""
    return json.dumps({"instance": instance}, sort_keys=True)


def active_record_instance(value: str) -> str:
    """The instance an active record names. Raises ContractError when ``value`` is not an active record."""
    try:
        doc = json.loads(value)
    except ValueError:
        raise ContractError("the active record is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("instance"), str) or not doc["instance"]:
        raise ContractError("the active record names no instance")
    return str(doc["instance"])


def switch_request_value(to: str, epoch: int) -> str:
    """A planned switch's record (docs/HA.md rule 8): the instance to become active and the epoch it applies to."""
    return json.dumps({"to": to, "epoch": epoch}, sort_keys=True)


def switch_request(value: str) -> tuple[str, int]:
    """(instance, epoch) of a planned switch's record. Raises ContractError when ``value`` is not one."""
    try:
        doc = json.loads(value)
    except ValueError:
        raise ContractError("the switch record is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("to"), str) or isinstance(doc.get("epoch"), bool) \
            or not isinstance(doc.get("epoch"), int):
        raise ContractError("the switch record is not {\"to\": instance, \"epoch\": number}")
    return doc["to"], doc["epoch"]
