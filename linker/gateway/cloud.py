"""What the agent reads from and writes to AWS, through boto3 (the instance role's credentials).

Reads: the link's membership (own region) and each peer gateway's public key (that peer's region): the key of the
instance the membership names as the peer's gateway, or the site's key when it names none or that instance
published none (an agent before per-instance keys).
Writes: this gateway's public keys (its instance's own, the site's) and health (SSM, own region), health metrics
(CloudWatch, own region).
Every failure surfaces as ``CloudUnavailable`` so the agent can back off and keep the tunnels up.
"""

from __future__ import annotations

import logging

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from linker import naming
from linker.contract import GatewayHealth, Membership, PublicKey
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


class Cloud:
    def __init__(self, link: str, site: str, region: str) -> None:
        self.link, self.site, self.region = link, site, region
        self._session = boto3.session.Session()
        self._ssm: dict[str, object] = {}

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

    def _keep_known(self, site: str, known: dict[str, bytes] | None, exc: Exception, keys: dict[str, bytes]) -> None:
        if known and site in known:
            keys[site] = known[site]
            log.warning("cannot read the public key of %s, keeping the last known one: %s", site, exc,
                        extra={"site": self.site})
        else:
            log.warning("cannot read the public key of %s, skipping that peer for now: %s", site, exc,
                        extra={"site": self.site})

    def publish_health(self, health: GatewayHealth) -> None:
        ssm = self._ssm_client(self.region)
        self._call("publish health", ssm.put_parameter, Name=naming.health_parameter(self.link, self.site),
                   Value=health.to_document(), Type="String", Overwrite=True)
        data = cloudwatch_metric_data(health)
        if data:
            cw = self._session.client("cloudwatch", region_name=self.region, config=_BOTO)
            for i in range(0, len(data), 20):
                self._call("put metrics", cw.put_metric_data, Namespace=METRIC_NAMESPACE, MetricData=data[i:i + 20])
