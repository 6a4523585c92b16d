# `terraform test` of a site with two gateways (ha = true, docs/HA.md) with a mock AWS provider, in a state of its
# own (each test file has one): as gateway.tftest.hcl, `terraform init -plugin-dir=DIR`, then `terraform test`.

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

# ha: two gateways in two zones, as `linker up --ha` makes them (the second tagged linker:slot=2), the routes to the
# lower instance id's ENI, the route tables tagged for the site's gateways, both peers' EIPs let in.
run "two_gateways" {
  command = apply
  variables {
    ha               = true
    second_subnet_id = "subnet-0f"
    peers = [
      { site = "eu-west-1", region = "eu-west-1", eip = "198.51.100.20", cidrs = ["10.20.0.0/16"], ha = true, second_eip = "198.51.100.21" },
      { site = "ap-south-1", region = "ap-south-1", eip = "192.0.2.30", cidrs = ["10.30.0.0/16", "10.31.0.0/16"] },
    ]
    peer_gateways = {
      "eu-west-1" = [
        { instance = "i-0ffff000000000002", az = "eu-west-1b", eip = "198.51.100.21", tunnel = "10.20.2.10" },
        { instance = "i-0aaaa000000000001", az = "eu-west-1a", eip = "198.51.100.20", tunnel = "10.20.1.10" },
      ]
      "ap-south-1" = []
    }
  }
  override_data {
    target = data.aws_subnet.second[0]
    values = { id = "subnet-0f", vpc_id = "vpc-0e", availability_zone = "us-east-1b" }
  }
  override_resource {
    target = aws_instance.gateway
    values = { id = "i-0bbbb000000000009", primary_network_interface_id = "eni-0first", private_ip = "10.10.1.10" }
  }
  override_resource {
    target = aws_instance.second[0]
    values = { id = "i-0bbbb000000000003", primary_network_interface_id = "eni-0second", private_ip = "10.10.2.10" }
  }
  override_resource {
    target = aws_eip.second[0]
    values = { public_ip = "203.0.113.11" }
  }

  assert {
    condition     = aws_instance.second[0].subnet_id == "subnet-0f" && aws_instance.second[0].tags["linker:slot"] == "2" && aws_instance.second[0].tags["Name"] == "linker-prod-us-east-1-2"
    error_message = "The second gateway runs in the second subnet, tagged linker:slot=2."
  }
  assert {
    condition     = aws_eip.second[0].tags["linker:slot"] == "2" && !contains(keys(aws_eip.gateway.tags), "linker:slot") && !contains(keys(aws_instance.gateway.tags), "linker:slot")
    error_message = "The second EIP carries linker:slot=2; the first gateway and its EIP carry no slot, as without ha."
  }
  assert {
    condition     = aws_eip_association.second[0].instance_id == "i-0bbbb000000000003" && aws_instance.second[0].user_data == aws_instance.gateway.user_data
    error_message = "Each gateway has its own EIP, and both run the same configuration."
  }
  assert {
    condition     = length(aws_route.to_peer) == 6 && alltrue([for r in aws_route.to_peer : r.network_interface_id == "eni-0second"])
    error_message = "The routes point at the lower instance id's ENI (here the second gateway's)."
  }
  assert {
    condition     = toset([for t in aws_ec2_tag.route_table : "${t.resource_id} ${t.key}=${t.value}"]) == toset(["rtb-0a linker:route:prod=us-east-1", "rtb-0b linker:route:prod=us-east-1"])
    error_message = "Each route table is tagged linker:route:<link>=<site>: the gateways may move routes there only."
  }
  assert {
    condition     = length(aws_ec2_tag.route) == 6 && contains([for t in aws_ec2_tag.route : "${t.resource_id} ${t.key}=${t.value}"], "rtb-0b linker:route:prod:10.31.0.0/16=us-east-1")
    error_message = "Each route is recorded on its table (linker:route:<link>:<cidr>), as the CLI records it: the gateways move those."
  }
  assert {
    condition     = toset([for r in aws_security_group.gateway.ingress : r.cidr_blocks[0] if r.protocol == "udp"]) == toset(["198.51.100.20/32", "198.51.100.21/32", "192.0.2.30/32"])
    error_message = "The tunnel port is open to both gateways of a peer with two, and to the other peers' one."
  }
  assert {
    condition     = length(regexall("ec2:ReplaceRoute", aws_iam_role_policy.gateway.policy)) == 1 && length(regexall("linker:route:prod", aws_iam_role_policy.gateway.policy)) == 1
    error_message = "The gateways' role may move routes in the tables tagged for its link."
  }
  assert {
    condition = jsonencode(jsondecode(aws_ssm_parameter.membership.value).sites[2]) == jsonencode({
      site     = "us-east-1", region = "us-east-1", eip = "203.0.113.11", cidrs = ["10.10.0.0/16"], port = 51820, ha = true,
      gateways = [["i-0bbbb000000000003", "us-east-1b", "203.0.113.11", "10.10.2.10"], ["i-0bbbb000000000009", "us-east-1a", "203.0.113.10", "10.10.1.10"]]
    })
    error_message = "The membership lists both gateways sorted by instance id, and names the lower id's EIP as the site's."
  }
  assert {
    condition     = jsondecode(aws_ssm_parameter.membership.value).sites[1].eip == "198.51.100.20" && length(jsondecode(aws_ssm_parameter.membership.value).sites[1].gateways) == 2
    error_message = "A peer with two gateways is listed with both, its EIP the lower id's."
  }
  assert {
    condition     = !contains(keys(jsondecode(aws_ssm_parameter.membership.value).sites[0]), "ha") && !contains(keys(jsondecode(aws_ssm_parameter.membership.value).sites[0]), "gateways")
    error_message = "A peer with one gateway is written as before HA."
  }
}

run "two_gateways_in_one_zone_are_refused" {
  command = plan
  variables {
    ha               = true
    second_subnet_id = "subnet-0f"
  }
  # the mock gives both subnets us-east-1a
  expect_failures = [data.aws_subnet.second]
}

run "ha_needs_a_second_subnet" {
  command = plan
  variables {
    ha = true
  }
  expect_failures = [data.aws_subnet.second]
}

run "without_ha_one_gateway" {
  command = plan
  assert {
    condition     = length(aws_instance.second) == 0 && length(aws_eip.second) == 0 && length(aws_ec2_tag.route_table) == 0 && length(aws_ec2_tag.route) == 0
    error_message = "Without ha, one gateway as before, and no route table tags."
  }
}
