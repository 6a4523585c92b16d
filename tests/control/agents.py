"""The gateways' agents of a link with two gateways per site, as far as the controller's rolling replacement needs
them (docs/HA.md): a thread that does what the route target's agent does with the site's records and routes.

- *Reconcile* (rule 6): when every linker route of a site points at one gateway and the active record names
  another (or none), it writes the record for that gateway.
- *Planned switch* (rule 8): a switch record whose epoch is the active record's version and that names one of the
  site's two gateways in the membership: the routes move to it (ReplaceRoute in the site's tagged tables), then the
  record names it. ``switching=False`` plays a standby whose tunnels never work: it never takes over.
- *Watch*: every round it checks that each route points at a running instance and that the membership lists at
  most two gateways per site; what breaks that is kept in ``faults``.

Each switch is appended to ``log`` as ``("Switched", instance)``, beside the controller's calls a
``ReadyReporter`` records (the list is shared; appends are atomic). Readiness is the ReadyReporter's part.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from linker import naming
from linker.contract import Membership


class FakeAgents:
    def __init__(self, session: Any, link: str, regions: tuple[str, ...], log: list[tuple[str, str]],
                 switching: bool = True) -> None:
        self.link, self.regions, self.log, self.switching = link, regions, log, switching
        self.faults: list[str] = []
        self._ssm = {r: session.client("ssm", region_name=r) for r in regions}
        self._ec2 = {r: session.client("ec2", region_name=r) for r in regions}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-agents", daemon=True)
        self.rounds = 0

    def __enter__(self) -> FakeAgents:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def settle(self, rounds: int = 2, timeout: float = 10.0) -> None:
        """Wait until the thread has made ``rounds`` more rounds (what it had to do is done)."""
        target, deadline = self.rounds + rounds, time.monotonic() + timeout
        while self.rounds < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        while not self._stop.is_set():
            for region in self.regions:
                try:
                    self._round(region)
                except ClientError as exc:  # a resource the controller is changing right now: next round
                    if "NotFound" not in str(exc) and "Invalid" not in str(exc):
                        self.faults.append(f"{region}: {exc}")
            self.rounds += 1
            time.sleep(0.01)

    def _get(self, region: str, name: str) -> dict[str, Any] | None:
        try:
            return self._ssm[region].get_parameter(Name=name)["Parameter"]  # type: ignore[no-any-return]
        except ClientError as exc:
            if "ParameterNotFound" not in str(exc):
                raise
            return None

    def _round(self, region: str) -> None:
        ec2, ssm = self._ec2[region], self._ssm[region]
        doc = self._get(region, naming.membership_parameter(self.link))
        membership = Membership.from_json(doc["Value"]) if doc else None
        site = membership.site(region) if membership else None
        if membership is not None:
            self._watch_membership(membership)
        if site is None or not site.ha or len(site.gateways) != 2:
            return
        tables = ec2.describe_route_tables(Filters=[
            {"Name": f"tag:{naming.route_table_tag(self.link)}", "Values": [region]}])["RouteTables"]
        enis = {r.get("NetworkInterfaceId") for t in tables for r in self._linker_routes(t)}
        instances = {i["InstanceId"]: i for r in ec2.describe_instances(
            InstanceIds=[g.instance for g in site.gateways])["Reservations"] for i in r["Instances"]}
        by_eni = {i["NetworkInterfaces"][0]["NetworkInterfaceId"]: i for i in instances.values()
                  if i.get("NetworkInterfaces")}
        self._watch_routes(region, ec2, enis)
        record = self._get(region, naming.active_parameter(self.link, region))
        holder = json.loads(record["Value"])["instance"] if record else None
        epoch = int(record["Version"]) if record else 0
        switch = self._get(region, naming.switch_parameter(self.link, region))
        if switch is not None and self.switching:
            asked = json.loads(switch["Value"])
            to = instances.get(asked["to"])
            if asked["epoch"] == epoch and to is not None and to["State"]["Name"] == "running":
                eni = to["NetworkInterfaces"][0]["NetworkInterfaceId"]
                for table in tables:
                    for route in self._linker_routes(table):
                        ec2.replace_route(RouteTableId=table["RouteTableId"],
                                          DestinationCidrBlock=route["DestinationCidrBlock"], NetworkInterfaceId=eni)
                self._write(ssm, region, to["InstanceId"])
                self.log.append(("Switched", to["InstanceId"]))
                return
        owner = by_eni.get(next(iter(enis))) if len(enis) == 1 else None
        if owner is not None and holder != owner["InstanceId"]:
            self._write(ssm, region, owner["InstanceId"])

    def _write(self, ssm: Any, region: str, instance: str) -> None:
        ssm.put_parameter(Name=naming.active_parameter(self.link, region), Value=json.dumps({"instance": instance}),
                          Type="String", Overwrite=True)

    def _linker_routes(self, table: dict[str, Any]) -> list[dict[str, Any]]:
        tagged = {t["Key"] for t in table.get("Tags", [])}
        return [r for r in table["Routes"] if naming.route_tag(self.link, r.get("DestinationCidrBlock", ""))
                in tagged and r.get("NetworkInterfaceId")]

    def _watch_routes(self, region: str, ec2: Any, enis: set[str | None]) -> None:
        for eni in enis:
            found = ec2.describe_network_interfaces(Filters=[
                {"Name": "network-interface-id", "Values": [eni]}])["NetworkInterfaces"]
            instance = found[0].get("Attachment", {}).get("InstanceId") if found else None
            state = None
            if instance:
                reservations = ec2.describe_instances(InstanceIds=[instance])["Reservations"]
                state = reservations[0]["Instances"][0]["State"]["Name"]
            if state != "running":
                self.faults.append(f"{region}: a route points at {eni} of {instance} ({state})")

    def _watch_membership(self, membership: Membership) -> None:
        for site in membership.sites:
            if len(site.gateways) > 2:
                self.faults.append(f"the membership lists {len(site.gateways)} gateways of {site.site}")
