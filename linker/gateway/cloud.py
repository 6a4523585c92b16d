"""What the agent reads from and writes to AWS, through boto3 (the instance role's credentials).

Reads: the link's membership (own region) and each peer gateway's public key (that peer's region): the key of the
instance the membership names as the peer's gateway, or the site's key when it names none or that instance
published none (an agent before per-instance keys).
Writes: this gateway's public keys (its instance's own, the site's) and health (SSM, own region), health metrics
(CloudWatch, own region).
In a site with two gateways (docs/HA.md) also: the site's route tables tagged ``linker:route:<link>=<site>``
(DescribeRouteTables) and their linker routes moved to this instance (ReplaceRoute), the site's active record
(written with Overwrite: its version is the epoch) and a planned switch's record, and remote sites' active records.
Every failure surfaces as ``CloudUnavailable`` so the agent can back off and keep the tunnels up. The boto3 clients
are thread-safe, so one method may run on the failover thread while another runs on the agent's loop.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from linker import naming
from linker.contract import (
    GatewayHealth,
    Membership,
    PublicKey,
    active_record_instance,
    active_record_value,
    switch_request,
)
from linker.contract import switch_request_value as switch_request_value  # its home is the contract; re-exported
from linker.errors import ContractError
from linker.gateway.health import METRIC_NAMESPACE, cloudwatch_metric_data

log = logging.getLogger("linker.gateway")

_BOTO = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=5)


def _first_found(ssm: object, names: list[str]) -> dict | None:
    """GetParameter's reply for the first of ``names`` that exists; None when none does. Raises ClientError and
    BotoCoreError for anything but ParameterNotFound."""
    for name in names:
        try:
            return ssm.get_parameter(Name=name)  # type: ignore[attr-defined, no-any-return]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise
    return None


class CloudUnavailable(Exception):
    """AWS could not be reached or refused: the agent keeps its last good configuration."""


@dataclass(frozen=True)
class ActiveRecord:
    """A site's active record: the instance it names (None when there is none) and its SSM version (the epoch; 0
    when there is none), and when it was written (wall-clock seconds; None when unknown)."""

    instance: str | None
    epoch: int
    written_at: float | None = None


NO_RECORD = ActiveRecord(None, 0)


class Cloud:
    def __init__(self, link: str, site: str, region: str) -> None:
        self.link, self.site, self.region = link, site, region
        self._session = boto3.session.Session()
        self._ssm: dict[str, object] = {}
        self._ec2: object | None = None
        self._route_cidrs: dict[str, tuple[str, ...]] = {}  # table -> its linker routes, as last read

    def _ssm_client(self, region: str):
        if region not in self._ssm:
            self._ssm[region] = self._session.client("ssm", region_name=region, config=_BOTO)
        return self._ssm[region]

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise CloudUnavailable(f"{what}: {exc}") from None

    def publish_public_key(self, public_key: bytes, instance: str | None = None) -> None:
        """The site's key, or with ``instance`` that instance's own (its readiness record)."""
        ssm = self._ssm_client(self.region)
        name = (naming.gateway_key_parameter(self.link, self.site, instance) if instance
                else naming.public_key_parameter(self.link, self.site))
        self._call("publish public key", ssm.put_parameter, Name=name,
                   Value=PublicKey(public_key).to_text(), Type="String", Overwrite=True)

    def membership(self) -> Membership:
        """Raises CloudUnavailable, or ContractError when the document is malformed or of a newer schema."""
        ssm = self._ssm_client(self.region)
        reply = self._call("read membership", ssm.get_parameter, Name=naming.membership_parameter(self.link))
        return Membership.from_json(reply["Parameter"]["Value"])

    def peer_public_keys(self, membership: Membership, known: dict[str, bytes] | None = None) -> dict[str, bytes]:
        """Public keys of the peers that published one; a missing one is not an error (not booted yet).

        A peer whose region cannot be reached keeps the key in ``known`` (the last good one), so an outage of one
        region does not hold back changes to the others."""
        keys: dict[str, bytes] = {}
        for entry in membership.peers_of(self.site):
            ssm = self._ssm_client(entry.region)
            names = [naming.public_key_parameter(self.link, entry.site)]
            if entry.gateway:  # the instance serving the peer: its own key, so a successor's is used only from now
                names.insert(0, naming.gateway_key_parameter(self.link, entry.site, entry.gateway))
            try:
                reply = _first_found(ssm, names)
            except (ClientError, BotoCoreError) as exc:
                self._keep_known(entry.site, known, exc, keys)
                continue
            if reply is None:
                continue  # not published yet: that peer is not booted
            try:
                keys[entry.site] = PublicKey.from_text(reply["Parameter"]["Value"]).key
            except ContractError:
                continue  # a malformed key is ignored, as if not yet published
        return keys

    def peer_gateway_keys(self, membership: Membership, known: dict[str, bytes] | None = None) -> dict[str, bytes]:
        """Instance id -> public key of each gateway of every remote site with two (docs/HA.md) that published its
        own key (readiness record); a region that cannot be reached keeps the keys in ``known``."""
        keys: dict[str, bytes] = {}
        for entry in membership.peers_of(self.site):
            if not entry.ha:
                continue
            ssm = self._ssm_client(entry.region)
            for gateway in entry.gateways:
                try:
                    reply = _first_found(ssm, [naming.gateway_key_parameter(self.link, entry.site, gateway.instance)])
                except (ClientError, BotoCoreError) as exc:
                    self._keep_known(gateway.instance, known, exc, keys)
                    continue
                try:
                    if reply is not None:
                        keys[gateway.instance] = PublicKey.from_text(reply["Parameter"]["Value"]).key
                except ContractError:
                    continue  # malformed: as if not yet published
        return keys

    def _keep_known(self, site: str, known: dict[str, bytes] | None, exc: Exception, keys: dict[str, bytes]) -> None:
        if known and site in known:
            keys[site] = known[site]
            log.warning("cannot read the public key of %s, keeping the last known one: %s", site, exc,
                        extra={"site": self.site})
        else:
            log.warning("cannot read the public key of %s, skipping that peer for now: %s", site, exc,
                        extra={"site": self.site})

    def publish_health(self, health: GatewayHealth) -> None:
        """The report at the site's health parameter; in a site with two gateways (``health.role`` set) at the
        gateway's own parameter, and at the site's too while it is the active one (so that a reader of the site's
        report sees the gateway that carries the traffic)."""
        ssm = self._ssm_client(self.region)
        names = [naming.health_parameter(self.link, self.site)]
        if health.role is not None and health.instance:
            names = [naming.gateway_health_parameter(self.link, self.site, health.instance)]
            if health.role == "active":
                names.append(naming.health_parameter(self.link, self.site))
        for name in names:
            self._call("publish health", ssm.put_parameter, Name=name, Value=health.to_document(), Type="String",
                       Overwrite=True)
        data = cloudwatch_metric_data(health)
        if data:
            cw = self._session.client("cloudwatch", region_name=self.region, config=_BOTO)
            for i in range(0, len(data), 20):
                self._call("put metrics", cw.put_metric_data, Namespace=METRIC_NAMESPACE, MetricData=data[i:i + 20])

    # --- a site with two gateways (docs/HA.md) ---

    def put_failover_metric(self, instance: str, count: int) -> None:
        """``count`` takeovers by ``instance`` since the last call: CloudWatch's ``Failovers`` (alarm on its sum)."""
        cw = self._session.client("cloudwatch", region_name=self.region, config=_BOTO)
        dims = [{"Name": "Link", "Value": self.link}, {"Name": "Site", "Value": self.site},
                {"Name": "Instance", "Value": instance}]
        self._call("put metrics", cw.put_metric_data, Namespace=METRIC_NAMESPACE,
                   MetricData=[{"MetricName": "Failovers", "Dimensions": dims, "Value": float(count), "Unit": "Count"}])

    def _ec2_client(self):
        if self._ec2 is None:
            self._ec2 = self._session.client("ec2", region_name=self.region, config=_BOTO)
        return self._ec2

    def active_record(self, site: str | None = None, region: str | None = None) -> ActiveRecord:
        """The active record of ``site`` (this one by default) in ``region`` (this one by default); NO_RECORD when
        there is none. Raises CloudUnavailable, or ContractError when the record is malformed."""
        ssm = self._ssm_client(region or self.region)
        name = naming.active_parameter(self.link, site or self.site)
        try:
            reply = ssm.get_parameter(Name=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return NO_RECORD
            raise CloudUnavailable(f"read the active record: {exc}") from None
        except BotoCoreError as exc:
            raise CloudUnavailable(f"read the active record: {exc}") from None
        parameter = reply["Parameter"]
        modified = parameter.get("LastModifiedDate")
        return ActiveRecord(active_record_instance(parameter["Value"]), int(parameter.get("Version", 1)),
                            modified.timestamp() if hasattr(modified, "timestamp") else None)

    def write_active_record(self, instance: str) -> int:
        """Name ``instance`` in the site's active record; return the version SSM gave the write (the epoch)."""
        ssm = self._ssm_client(self.region)
        reply = self._call("write the active record", ssm.put_parameter, Name=naming.active_parameter(self.link,
                           self.site), Value=active_record_value(instance), Type="String", Overwrite=True)
        return int(reply["Version"])

    def switch_request(self) -> tuple[str, int] | None:
        """The planned switch asked for the site (instance, epoch); None when none is. Raises CloudUnavailable, or
        ContractError when the record is malformed."""
        ssm = self._ssm_client(self.region)
        try:
            reply = _first_found(ssm, [naming.switch_parameter(self.link, self.site)])
        except (BotoCoreError, ClientError) as exc:
            raise CloudUnavailable(f"read the switch record: {exc}") from None
        return None if reply is None else switch_request(reply["Parameter"]["Value"])

    def route_targets(self, instance: str, eni: str | None, sibling: str) -> tuple[tuple[str, str | None], ...]:
        """For each route table of the site (tagged ``linker:route:<link>=<site>``) that holds linker routes of the
        link (the table's ``linker:route:<link>:<cidr>`` tags): the gateway all of them point at (``instance``, this
        one, whose interface is ``eni``, or ``sibling``), or None (a blackhole, no route, routes that disagree).

        A route names its instance (EC2 reports it for an instance's interface); when it names only an interface,
        this instance's is ``eni``, and another one is taken to be the sibling's only when it is the one such
        interface in all the site's tables: only the site's gateways and the controller write these routes, and a
        deleted gateway's interface reads as a blackhole. Raises CloudUnavailable."""
        ec2 = self._ec2_client()
        key = naming.route_table_tag(self.link)
        reply = self._call("read the route tables", ec2.describe_route_tables,
                           Filters=[{"Name": f"tag:{key}", "Values": [self.site]}])
        found: dict[str, list[tuple[str | None, str | None]]] = {}  # table -> (instance, interface) per route
        cidrs_of = {}
        for table in reply.get("RouteTables", []):
            tags = {t["Key"]: t["Value"] for t in table.get("Tags", [])}
            cidrs = tuple(sorted(naming.routes_tagged(self.link, tags.items())))
            if not cidrs:
                continue  # tagged for the site but holding none of its routes (yet)
            routes = {r.get("DestinationCidrBlock"): r for r in table.get("Routes", [])}
            cidrs_of[table["RouteTableId"]] = cidrs
            found[table["RouteTableId"]] = [
                (None, None) if (r := routes.get(c)) is None or r.get("State") == "blackhole"
                else (r.get("InstanceId"), r.get("NetworkInterfaceId")) for c in cidrs]
        foreign = {e for routes in found.values() for i, e in routes if not i and e and e != eni}
        sibling_eni = foreign.pop() if len(foreign) == 1 else None

        def target(route: tuple[str | None, str | None]) -> str | None:
            owner, interface = route
            if owner:
                return owner
            if interface and interface == eni:
                return instance
            return sibling if interface and interface == sibling_eni else None

        self._route_cidrs = cidrs_of
        out = []
        for table_id, routes in sorted(found.items()):
            targets = {target(r) for r in routes}
            out.append((table_id, targets.pop() if len(targets) == 1 else None))
        return tuple(out)

    def move_routes(self, tables: tuple[str, ...], instance: str, eni: str | None = None) -> None:
        """ReplaceRoute every linker route of ``tables`` (as the last ``route_targets`` read them) to this
        gateway: its interface ``eni`` when known (as the controller makes them), else ``instance``; concurrently
        (a takeover's time is the slowest call, not their sum). Raises CloudUnavailable naming the first failure
        once every call has ended; the next read tells which tables moved."""
        ec2 = self._ec2_client()
        calls = [(t, c) for t in tables for c in self._route_cidrs.get(t, ())]
        if not calls:
            return
        target = {"NetworkInterfaceId": eni} if eni else {"InstanceId": instance}

        def one(call: tuple[str, str]) -> str | None:
            table, cidr = call
            try:
                ec2.replace_route(RouteTableId=table, DestinationCidrBlock=cidr, **target)
            except (BotoCoreError, ClientError) as exc:
                return f"replace the route to {cidr} in {table}: {exc}"
            return None

        with ThreadPoolExecutor(max_workers=min(8, len(calls)), thread_name_prefix="replace-route") as pool:
            errors = [e for e in pool.map(one, calls) if e]
        if errors:
            raise CloudUnavailable(errors[0])
