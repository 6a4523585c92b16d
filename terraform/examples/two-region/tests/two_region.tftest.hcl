# `terraform test` of the two-region example with mock AWS providers (no account, no network):
# `terraform init -plugin-dir=DIR` (a directory holding hashicorp/aws 5.x), then `terraform test`.
# tests/terraform/test_provider.py runs it in CI.

mock_provider "aws" {
  alias = "east"
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_vpc" {
    defaults = { cidr_block_associations = [{ association_id = "vpc-cidr-assoc-1", cidr_block = "10.10.0.0/16", state = "associated" }] }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef0" }
  }
  mock_resource "aws_eip" {
    defaults = { public_ip = "203.0.113.10" }
  }
}

mock_provider "aws" {
  alias = "west"
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_vpc" {
    defaults = { cidr_block_associations = [{ association_id = "vpc-cidr-assoc-1", cidr_block = "10.20.0.0/16", state = "associated" }] }
  }
  mock_data "aws_ssm_parameter" {
    defaults = { value = "ami-0123456789abcdef0" }
  }
  mock_resource "aws_eip" {
    defaults = { public_ip = "198.51.100.20" }
  }
}

variables {
  wheel = "../../modules/gateway/tests/linker-0.0.0-gateway-cp311-x86_64.tar"
  east  = { region = "us-east-1", vpc_id = "vpc-0e", subnet_id = "subnet-0e", route_table_ids = ["rtb-0e"] }
  west  = { region = "eu-west-1", vpc_id = "vpc-0w", subnet_id = "subnet-0w", route_table_ids = ["rtb-0w"] }
}

run "two_sites" {
  command = apply

  assert {
    condition     = output.gateways["us-east-1"].eip == "203.0.113.10" && output.gateways["eu-west-1"].eip == "198.51.100.20"
    error_message = "Each site has its gateway's Elastic IP."
  }
  assert {
    condition     = output.gateways["us-east-1"].cidrs == ["10.10.0.0/16"] && output.gateways["eu-west-1"].cidrs == ["10.20.0.0/16"]
    error_message = "Each site routes its own VPC's CIDRs."
  }
  assert {
    condition     = toset([for s in jsondecode(output.membership).sites : "${s.site}=${s.eip}"]) == toset(["us-east-1=203.0.113.10", "eu-west-1=198.51.100.20"])
    error_message = "The membership names both sites at their Elastic IPs."
  }
  assert {
    condition     = module.east.membership == module.west.membership
    error_message = "Both regions hold the same membership document."
  }
}

# Both sites with two gateways: no dependency cycle (each site's instances wait for its peers' Elastic IPs only),
# and each region's membership lists the four gateways.
run "two_sites_with_two_gateways" {
  command = apply
  variables {
    ha   = true
    east = { region = "us-east-1", vpc_id = "vpc-0e", subnet_id = "subnet-0e", second_subnet_id = "subnet-0e2", route_table_ids = ["rtb-0e"] }
    west = { region = "eu-west-1", vpc_id = "vpc-0w", subnet_id = "subnet-0w", second_subnet_id = "subnet-0w2", route_table_ids = ["rtb-0w"] }
  }
  override_data {
    target = module.east.data.aws_subnet.gateway[0]
    values = { vpc_id = "vpc-0e", availability_zone = "us-east-1a" }
  }
  override_data {
    target = module.east.data.aws_subnet.second[0]
    values = { id = "subnet-0e2", vpc_id = "vpc-0e", availability_zone = "us-east-1b" }
  }
  override_data {
    target = module.west.data.aws_subnet.gateway[0]
    values = { vpc_id = "vpc-0w", availability_zone = "eu-west-1a" }
  }
  override_data {
    target = module.west.data.aws_subnet.second[0]
    values = { id = "subnet-0w2", vpc_id = "vpc-0w", availability_zone = "eu-west-1b" }
  }

  assert {
    condition     = alltrue([for s in jsondecode(output.membership).sites : s.ha && length(s.gateways) == 2])
    error_message = "The membership lists both gateways of each site."
  }
  assert {
    condition     = module.east.membership == module.west.membership
    error_message = "Both regions hold the same membership document."
  }
  assert {
    condition     = output.gateways["us-east-1"].second_instance_id != null && output.gateways["eu-west-1"].second_instance_id != null
    error_message = "Each site has a second gateway."
  }
}
