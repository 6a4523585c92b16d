# `terraform test` of one site with a mock AWS provider (no account, no network): `terraform init -plugin-dir=DIR`
# (a directory holding hashicorp/aws 5.x), then `terraform test`. tests/terraform/test_provider.py runs it in CI.

mock_provider "aws" {
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
  mock_resource "aws_instance" {
    defaults = { primary_network_interface_id = "eni-0123456789abcdef0" }
  }
  mock_data "aws_subnet" {
    defaults = { vpc_id = "vpc-0e", availability_zone = "us-east-1a" }
  }
}

variables {
  link            = "prod"
  site            = "us-east-1"
  vpc_id          = "vpc-0e"
  subnet_id       = "subnet-0e"
  route_table_ids = ["rtb-0a", "rtb-0b"]
  peers = [
    { site = "eu-west-1", region = "eu-west-1", eip = "198.51.100.20", cidrs = ["10.20.0.0/16"] },
    { site = "ap-south-1", region = "ap-south-1", eip = "192.0.2.30", cidrs = ["10.30.0.0/16", "10.31.0.0/16"] },
  ]
  wheel = "tests/linker-0.0.0-gateway-cp311-x86_64.tar"
}

run "one_site" {
  command = apply

  assert {
    condition     = toset([for r in aws_security_group.gateway.ingress : r.cidr_blocks[0] if r.protocol == "udp"]) == toset(["198.51.100.20/32", "192.0.2.30/32"])
    error_message = "The tunnel port must be open to each peer gateway's Elastic IP and nothing else."
  }
  assert {
    condition     = alltrue([for r in aws_security_group.gateway.ingress : r.from_port == 51820 && r.to_port == 51820 if r.protocol == "udp"])
    error_message = "Peers may reach the tunnel port only."
  }
  assert {
    condition     = !anytrue([for r in aws_security_group.gateway.ingress : contains(r.cidr_blocks, "0.0.0.0/0")])
    error_message = "No ingress from anywhere."
  }
  assert {
    condition     = !anytrue([for r in aws_security_group.gateway.egress : contains(r.cidr_blocks, "0.0.0.0/0") && r.protocol == "-1"])
    error_message = "No unrestricted egress: HTTPS to the AWS APIs, the tunnel port to the peers and the site VPC only."
  }
  assert {
    condition = alltrue([for r in concat(tolist(aws_security_group.gateway.ingress), tolist(aws_security_group.gateway.egress)) :
    length(regexall("^[a-zA-Z0-9. _:/()#,@+=&;{}!$*\\[\\]-]+$", r.description)) > 0])
    error_message = "Every rule has a description, in the characters EC2 accepts (an apostrophe fails at apply)."
  }
  assert {
    condition     = length(regexall("^[a-zA-Z0-9. _:/()#,@+=&;{}!$*\\[\\]-]+$", aws_security_group.gateway.description)) > 0
    error_message = "The group's description must be in the characters EC2 accepts."
  }
  assert {
    condition     = aws_instance.gateway.metadata_options[0].http_tokens == "required" && aws_instance.gateway.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "IMDSv2 only, one hop."
  }
  assert {
    condition     = aws_instance.gateway.source_dest_check == false
    error_message = "A gateway forwards other hosts' packets: source/dest check off."
  }
  assert {
    condition     = aws_instance.gateway.credit_specification[0].cpu_credits == "standard"
    error_message = "A burstable gateway runs with standard credits (no surplus charges)."
  }
  assert {
    condition     = aws_instance.gateway.root_block_device[0].encrypted == true
    error_message = "The root volume is encrypted."
  }
  assert {
    condition     = length(aws_route.to_peer) == 6 && alltrue([for r in aws_route.to_peer : r.network_interface_id == "eni-0123456789abcdef0"])
    error_message = "Each route table gets a route to each peer CIDR, through the gateway's ENI."
  }
  assert {
    condition     = aws_ssm_parameter.membership.name == "/linker/prod/membership" && length(jsondecode(aws_ssm_parameter.membership.value).sites) == 3
    error_message = "The membership names every site of the link."
  }
  assert {
    condition     = aws_instance.gateway.tags["linker:managed-by"] == "terraform" && aws_instance.gateway.tags["linker:link"] == "prod"
    error_message = "Resources carry the link's tags, managed by Terraform."
  }
}

run "link_names_are_the_cli_ones" {
  command = plan
  variables {
    link = "Prod_Link"
  }
  expect_failures = [var.link]
}
