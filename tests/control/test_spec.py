"""The link spec's validation: pure functions, tested as data."""

from __future__ import annotations

import pytest

from linker.errors import ExitCode, SpecError
from linker.spec import (
    SiteCidrs,
    check_overlap,
    gateway_architecture,
    parse_vpc_options,
    validate_instance_type,
    validate_link_name,
    validate_port,
    validate_regions,
)

KNOWN = ["us-east-1", "us-east-2", "eu-west-1", "eu-central-1", "ap-south-1"]


def test_two_default_vpcs_overlap_and_the_message_says_why_and_how() -> None:
    with pytest.raises(SpecError) as info:
        check_overlap([SiteCidrs("us-east-1", "vpc-1", ("172.31.0.0/16",)),
                       SiteCidrs("eu-west-1", "vpc-2", ("172.31.0.0/16",))])
    err = info.value
    assert err.exit_code == ExitCode.USER
    assert "Default VPCs are all 172.31.0.0/16" in err.message
    assert "--vpc us-east-1=vpc-" in (err.fix or "") and "--vpc eu-west-1=vpc-" in (err.fix or "")


def test_partial_overlap_through_a_secondary_block_is_found() -> None:
    with pytest.raises(SpecError, match=r"10\.20\.128\.0/17"):
        check_overlap([SiteCidrs("a", "vpc-1", ("10.10.0.0/16", "10.20.128.0/17")),
                       SiteCidrs("b", "vpc-2", ("10.20.0.0/16",))])


def test_disjoint_cidrs_pass_and_ipv6_does_not_collide_with_ipv4() -> None:
    check_overlap([SiteCidrs("a", "vpc-1", ("10.10.0.0/16", "2001:db8::/56")),
                   SiteCidrs("b", "vpc-2", ("10.11.0.0/16",)), SiteCidrs("c", "vpc-3", ("192.168.0.0/24",))])


@pytest.mark.parametrize("regions, needle", [
    (["us-east-1"], "at least two"),
    (["us-east-1", "us-east-1"], "given twice"),
    (["us-east-1", "us-esat-1"], "unknown region 'us-esat-1'"),
    (["us-east-1", "useast1"], "looks like us-east-1"),
])
def test_bad_region_lists_are_refused(regions: list[str], needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        validate_regions(regions, KNOWN)


def test_unknown_region_suggests_known_ones_of_the_same_area() -> None:
    with pytest.raises(SpecError) as info:
        validate_regions(["us-east-1", "eu-west-9"], KNOWN)
    assert "eu-central-1" in (info.value.fix or "") and "us-east-2" not in (info.value.fix or "")


def test_vpc_options_parse_and_refuse_what_is_wrong() -> None:
    regions = ("us-east-1", "eu-west-1")
    assert parse_vpc_options(["eu-west-1=vpc-0abc12345", "us-east-1 = vpc-12345678"], regions) == (
        ("eu-west-1", "vpc-0abc12345"), ("us-east-1", "vpc-12345678"))
    for bad, needle in [("vpc-12345678", "REGION=VPC-ID"), ("us-east-1=subnet-1234", "not a VPC id"),
                        ("ap-south-1=vpc-12345678", "not one of the link's regions")]:
        with pytest.raises(SpecError, match=needle):
            parse_vpc_options([bad], regions)
    with pytest.raises(SpecError, match="two VPCs"):
        parse_vpc_options(["us-east-1=vpc-12345678", "us-east-1=vpc-87654321"], regions)


def test_names_ports_and_types() -> None:
    assert validate_link_name("prod-eu") == "prod-eu"
    for bad in ("", "Prod", "a_b", "-x", "x" * 25, "a/b"):
        with pytest.raises(SpecError):
            validate_link_name(bad)
    assert validate_port(51820) == 51820
    for bad in (0, 65536):
        with pytest.raises(SpecError):
            validate_port(bad)
    assert validate_instance_type("t4g.nano") == "t4g.nano"
    with pytest.raises(SpecError):
        validate_instance_type("t3 micro")
    assert [gateway_architecture(t) for t in ("t3.micro", "t4g.nano", "c7gn.large", "m6gd.large", "c5n.large",
                                               "a1.medium")] == ["x86_64", "arm64", "arm64", "arm64", "x86_64", "arm64"]
