"""The agent's AWS side of failover (docs/HA.md): route tables by tag, ReplaceRoute, the active and switch records,
the per-gateway health, the keys of both gateways of a remote site; every failure as CloudUnavailable."""

from __future__ import annotations

import datetime
import json
import os

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from linker import naming
from linker.contract import GatewayHealth, Membership, PublicKey
from linker.errors import ContractError
from linker.gateway.cloud import NO_RECORD, ActiveRecord, Cloud, CloudUnavailable, switch_request_value
from linker.wg.keys import generate_private_key, public_key_of

LINK, SITE = "prod", "us-east-1"


def not_found(op: str) -> ClientError:
    return ClientError({"Error": {"Code": "ParameterNotFound", "Message": "no"}}, op)


class FakeSsm:
    def __init__(self, down: bool = False) -> None:
        self.params: dict[str, tuple[str, int]] = {}
        self.down = down

    def get_parameter(self, Name: str) -> dict:
        if self.down:
            raise EndpointConnectionError(endpoint_url="https://ssm")
        if Name not in self.params:
            raise not_found("GetParameter")
        value, version = self.params[Name]
        return {"Parameter": {"Value": value, "Version": version,
                              "LastModifiedDate": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}}

    def put_parameter(self, Name: str, Value: str, Type: str, Overwrite: bool) -> dict:
        if self.down:
            raise EndpointConnectionError(endpoint_url="https://ssm")
        version = self.params.get(Name, ("", 0))[1] + 1
        self.params[Name] = (Value, version)
        return {"Version": version, "Tier": "Standard"}


def table(table_id: str, routes: dict[str, str | None], site: str = SITE, extra: dict | None = None) -> dict:
    tags = [{"Key": naming.route_table_tag(LINK), "Value": site}]
    tags += [{"Key": naming.route_tag(LINK, c), "Value": "eu-west-1"} for c in routes]
    out = []
    for cidr, target in routes.items():
        route = {"DestinationCidrBlock": cidr, "State": "active"}
        if target == "blackhole":
            route.update(State="blackhole", NetworkInterfaceId="eni-gone")
        elif target and target.startswith("eni-"):
            route["NetworkInterfaceId"] = target  # as moto reports a route made with an interface
        elif target:
            route.update(InstanceId=target, NetworkInterfaceId=f"eni-of-{target}")
        out.append(route)
    out.append({"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1", "State": "active"})  # not linker's
    return {"RouteTableId": table_id, "Tags": tags, "Routes": out, **(extra or {})}


class FakeEc2:
    def __init__(self, tables: list[dict]) -> None:
        self.tables, self.filters, self.replaced, self.fail = tables, [], [], set()

    def describe_route_tables(self, Filters: list[dict]) -> dict:
        self.filters.append(Filters)
        return {"RouteTables": self.tables}

    def replace_route(self, RouteTableId: str, DestinationCidrBlock: str, **target: str) -> None:
        if RouteTableId in self.fail:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "ReplaceRoute")
        (value,) = target.values()
        self.replaced.append((RouteTableId, DestinationCidrBlock, value))


def cloud(ssm: FakeSsm | None = None, ec2: FakeEc2 | None = None) -> Cloud:
    c = Cloud(LINK, SITE, SITE)
    c._ssm = {SITE: ssm or FakeSsm(), "eu-west-1": FakeSsm()}
    c._ec2 = ec2
    return c


def test_the_route_view_reads_only_the_sites_tagged_tables_and_linker_routes() -> None:
    ec2 = FakeEc2([table("rtb-1", {"10.1.0.0/16": "i-a", "10.2.0.0/16": "i-a"}),
                   table("rtb-2", {"10.1.0.0/16": "i-a", "10.2.0.0/16": "i-b"}),  # a mix: no owner
                   table("rtb-3", {"10.1.0.0/16": "blackhole"}),
                   table("rtb-4", {})])  # tagged but empty: skipped
    c = cloud(ec2=ec2)
    assert c.route_targets("i-a", None, "i-b") == (("rtb-1", "i-a"), ("rtb-2", None), ("rtb-3", None))
    assert ec2.filters == [[{"Name": f"tag:{naming.route_table_tag(LINK)}", "Values": [SITE]}]]


def test_a_takeover_replaces_every_linker_route_of_the_tables_named() -> None:
    ec2 = FakeEc2([table("rtb-1", {"10.1.0.0/16": "i-a", "10.2.0.0/16": "i-a"}),
                   table("rtb-2", {"10.1.0.0/16": "i-b"})])
    c = cloud(ec2=ec2)
    c.route_targets("i-b", "eni-b", "i-a")
    c.move_routes(("rtb-1",), "i-b", "eni-b")  # to its interface, as the controller makes them
    assert sorted(ec2.replaced) == [("rtb-1", "10.1.0.0/16", "eni-b"), ("rtb-1", "10.2.0.0/16", "eni-b")]
    ec2.fail = {"rtb-2"}
    with pytest.raises(CloudUnavailable, match="rtb-2"):
        c.move_routes(("rtb-1", "rtb-2"), "i-b")  # interface unknown: by instance id
    assert ("rtb-1", "10.1.0.0/16", "i-b") in ec2.replaced  # the other table's calls still went out


def test_routes_that_name_only_an_interface() -> None:
    own = FakeEc2([table("rtb-1", {"10.1.0.0/16": "eni-a"}), table("rtb-2", {"10.1.0.0/16": "eni-a"})])
    assert cloud(ec2=own).route_targets("i-a", "eni-a", "i-b") == (("rtb-1", "i-a"), ("rtb-2", "i-a"))
    sibling = FakeEc2([table("rtb-1", {"10.1.0.0/16": "eni-b"}), table("rtb-2", {"10.1.0.0/16": "eni-a"})])
    assert cloud(ec2=sibling).route_targets("i-a", "eni-a", "i-b") == (("rtb-1", "i-b"), ("rtb-2", "i-a"))
    # two foreign interfaces: which one is the sibling's cannot be told, so neither counts as a gateway's
    two = FakeEc2([table("rtb-1", {"10.1.0.0/16": "eni-b"}), table("rtb-2", {"10.1.0.0/16": "eni-x"})])
    assert cloud(ec2=two).route_targets("i-a", "eni-a", "i-b") == (("rtb-1", None), ("rtb-2", None))


def test_the_active_record_is_json_and_its_version_is_the_epoch() -> None:
    ssm = FakeSsm()
    c = cloud(ssm)
    assert c.active_record() == NO_RECORD
    assert c.write_active_record("i-a") == 1
    assert c.write_active_record("i-b") == 2
    record = c.active_record()
    assert (record.instance, record.epoch) == ("i-b", 2) and record.written_at is not None
    assert json.loads(ssm.params[naming.active_parameter(LINK, SITE)][0]) == {"instance": "i-b"}
    assert c.active_record("eu-west-1", "eu-west-1") == ActiveRecord(None, 0)  # a remote site's, in its region
    ssm.params[naming.active_parameter(LINK, SITE)] = ("{}", 3)
    with pytest.raises(ContractError):
        c.active_record()


def test_the_switch_record() -> None:
    ssm = FakeSsm()
    c = cloud(ssm)
    assert c.switch_request() is None
    ssm.params[naming.switch_parameter(LINK, SITE)] = (switch_request_value("i-b", 4), 1)
    assert c.switch_request() == ("i-b", 4)
    ssm.params[naming.switch_parameter(LINK, SITE)] = ('{"to": "i-b", "epoch": true}', 2)
    with pytest.raises(ContractError):
        c.switch_request()


def test_failures_are_cloud_unavailable() -> None:
    c = cloud(FakeSsm(down=True))
    for call in (c.active_record, c.switch_request, lambda: c.write_active_record("i-a")):
        with pytest.raises(CloudUnavailable):
            call()


def health(role: str | None) -> GatewayHealth:
    return GatewayHealth(LINK, SITE, 1.0, (), "i-a", "0", role)


def test_each_gateway_of_a_site_with_two_reports_at_its_own_parameter_and_the_active_at_the_sites() -> None:
    ssm = FakeSsm()
    c = cloud(ssm)
    c._session = None  # type: ignore[assignment]  # no tunnels: no CloudWatch client is made
    c.publish_health(health("standby"))
    assert set(ssm.params) == {naming.gateway_health_parameter(LINK, SITE, "i-a")}
    c.publish_health(health("active"))
    assert set(ssm.params) == {naming.gateway_health_parameter(LINK, SITE, "i-a"), naming.health_parameter(LINK, SITE)}
    single = FakeSsm()
    cloud(single).publish_health(health(None))
    assert set(single.params) == {naming.health_parameter(LINK, SITE)}


def test_the_keys_of_both_gateways_of_a_remote_site_with_two() -> None:
    keys = {i: public_key_of(generate_private_key(os.urandom)) for i in ("i-c", "i-d")}
    doc = Membership.from_json(json.dumps({"schema": 1, "link": LINK, "sites": [
        {"site": SITE, "region": SITE, "eip": "198.51.100.1", "cidrs": ["10.1.0.0/16"], "port": 51820},
        {"site": "eu-west-1", "region": "eu-west-1", "eip": "198.51.100.2", "cidrs": ["10.2.0.0/16"], "port": 51820,
         "gateway": "i-c", "ha": True, "gateways": [["i-c", "eu-west-1a", "198.51.100.2", "10.2.0.10"],
                                                      ["i-d", "eu-west-1b", "198.51.100.3", "10.2.1.10"]]}]}))
    c = cloud()
    remote = c._ssm["eu-west-1"]
    remote.params[naming.gateway_key_parameter(LINK, "eu-west-1", "i-c")] = (PublicKey(keys["i-c"]).to_text(), 1)
    assert c.peer_gateway_keys(doc) == {"i-c": keys["i-c"]}  # i-d not ready yet
    remote.down = True
    assert c.peer_gateway_keys(doc, {"i-d": keys["i-d"]}) == {"i-d": keys["i-d"]}  # the last known one is kept


def test_the_failover_metric() -> None:
    calls: list[dict] = []

    class Session:
        def client(self, service: str, region_name: str, config: object) -> object:
            assert (service, region_name) == ("cloudwatch", SITE)
            return type("Cw", (), {"put_metric_data": lambda self, **kw: calls.append(kw)})()

    c = cloud()
    c._session = Session()  # type: ignore[assignment]
    c.put_failover_metric("i-b", 2)
    (call,) = calls
    (datum,) = call["MetricData"]
    assert call["Namespace"] == "Linker" and datum["MetricName"] == "Failovers" and datum["Value"] == 2.0
    assert {"Name": "Instance", "Value": "i-b"} in datum["Dimensions"]
