# Two sites of one link, as `linker up us-east-1 eu-west-1` makes them (with ha = true, as `linker up --ha`:
# two gateways per site, in two availability zones), managed by Terraform instead.
# One module instance per region, each with its own provider; the peers of each are the other's Elastic IP and
# VPC CIDRs. Each instance writes the link's membership document in its own region. A third site is one more
# provider and module, and one more entry in each module's peers.

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
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

module "east" {
  source    = "../../modules/gateway"
  providers = { aws = aws.east }

  link            = var.link
  site            = var.east.region
  vpc_id          = var.east.vpc_id
  subnet_id       = var.east.subnet_id
  route_table_ids = var.east.route_table_ids
  peers           = [module.west.peer]
  # with ha: two gateways per site, the second in another zone
  ha               = var.ha
  second_subnet_id = var.east.second_subnet_id
  peer_gateways    = { (module.west.site) = module.west.gateways } # empty without ha
  port             = var.port
  instance_type    = var.instance_type
  wheel            = var.wheel
}

module "west" {
  source    = "../../modules/gateway"
  providers = { aws = aws.west }

  link            = var.link
  site            = var.west.region
  vpc_id          = var.west.vpc_id
  subnet_id       = var.west.subnet_id
  route_table_ids = var.west.route_table_ids
  peers           = [module.east.peer]
  # with ha: two gateways per site, the second in another zone
  ha               = var.ha
  second_subnet_id = var.west.second_subnet_id
  peer_gateways    = { (module.east.site) = module.east.gateways } # empty without ha
  port             = var.port
  instance_type    = var.instance_type
  wheel            = var.wheel
}
