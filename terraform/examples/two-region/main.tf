# Two sites of one link, as `linker up us-east-1 eu-west-1` makes them, managed by Terraform instead.
# Each module is one region; the peers of each are the other's Elastic IP and CIDRs. The membership document
# (the gateway agents read it from SSM) is written in both regions.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  alias  = "east"
  region = var.east.region
}

provider "aws" {
  alias  = "west"
  region = var.west.region
}

locals {
  sites = {
    east = { site = var.east.region, region = var.east.region, eip = module.east.eip, cidrs = var.east.cidrs, port = var.port }
    west = { site = var.west.region, region = var.west.region, eip = module.west.eip, cidrs = var.west.cidrs, port = var.port }
  }
  membership = jsonencode({
    schema = 1
    link   = var.link
    sites  = [local.sites.east, local.sites.west]
  })
}

module "east" {
  source    = "../../modules/gateway"
  providers = { aws = aws.east }

  link            = var.link
  site            = var.east.region
  vpc_id          = var.east.vpc_id
  subnet_id       = var.east.subnet_id
  route_table_ids = var.east.route_table_ids
  peers           = [{ site = var.west.region, eip = module.west.eip, cidrs = var.west.cidrs }]
  port            = var.port
  install_source  = var.install_source
  linker_version  = var.linker_version
}

module "west" {
  source    = "../../modules/gateway"
  providers = { aws = aws.west }

  link            = var.link
  site            = var.west.region
  vpc_id          = var.west.vpc_id
  subnet_id       = var.west.subnet_id
  route_table_ids = var.west.route_table_ids
  peers           = [{ site = var.east.region, eip = module.east.eip, cidrs = var.east.cidrs }]
  port            = var.port
  install_source  = var.install_source
  linker_version  = var.linker_version
}

resource "aws_ssm_parameter" "membership_east" {
  provider = aws.east
  name     = "/linker/${var.link}/membership"
  type     = "String"
  value    = local.membership
  tags     = { "linker:link" = var.link, "linker:site" = var.east.region, "linker:managed-by" = "terraform" }
}

resource "aws_ssm_parameter" "membership_west" {
  provider = aws.west
  name     = "/linker/${var.link}/membership"
  type     = "String"
  value    = local.membership
  tags     = { "linker:link" = var.link, "linker:site" = var.west.region, "linker:managed-by" = "terraform" }
}
