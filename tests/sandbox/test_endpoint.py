"""The embedded endpoint in this process (loopback only, no root): only its access key gets in, TEST-NET Elastic IPs,
AWS-like instance addresses, mutating calls reported; moto is left as it was found."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from linker.sandbox.endpoint import AddressBook, Endpoint

KEY = "LKSBTESTKEY0000000001"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[tuple[str, str]], set[str]]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sandbox")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    changes: list[tuple[str, str]] = []
    regions: set[str] = set()
    server = Endpoint(AddressBook(), KEY, lambda r, a: changes.append((r, a)), regions.add)
    port = server.start_local()
    try:
        yield f"http://127.0.0.1:{port}", changes, regions
    finally:
        server.stop()


def test_addresses_are_test_net_and_aws_like_and_mutations_are_reported(endpoint) -> None:  # type: ignore[no-untyped-def]
    url, changes, regions = endpoint
    ec2 = boto3.client("ec2", region_name="eu-west-1", endpoint_url=url)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    eips = [ec2.allocate_address(Domain="vpc")["PublicIp"] for _ in range(3)]
    assert all(ip.startswith("203.0.113.") for ip in eips) and len(set(eips)) == 3
    image = ec2.describe_images()["Images"][0]["ImageId"]
    made = [ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]
            for _ in range(2)]
    assert [i["PrivateIpAddress"] for i in made] == ["10.20.1.4", "10.20.1.5"]  # .0-.3 are AWS's
    ec2.describe_instances()
    assert ("eu-west-1", "AllocateAddress") in changes and ("eu-west-1", "RunInstances") in changes
    assert not any(a.startswith("Describe") for _, a in changes)
    assert regions == {"eu-west-1"}


def test_only_the_sandbox_access_key_gets_in(endpoint) -> None:  # type: ignore[no-untyped-def]
    url, changes, _ = endpoint
    for key in ("AKIAIOSFODNN7EXAMPLE", "sandbox"):
        other = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key="x")  # noqa: S106
        with pytest.raises(ClientError, match=r"InvalidClientTokenId|403"):
            other.client("ec2", region_name="us-east-1", endpoint_url=url).run_instances(
                ImageId="ami-12345678", MinCount=1, MaxCount=1)
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError, match="403"):  # unsigned, e.g. moto's own reset API
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10)  # noqa: S310
    assert changes == []


def test_moto_is_restored_when_the_endpoint_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.ec2.models.elastic_ip_addresses as eips

    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    before = eips.random_ip
    server = Endpoint(AddressBook(), KEY, lambda r, a: None, lambda r: None)
    assert eips.random_ip is not before
    server.stop()
    assert eips.random_ip is before
