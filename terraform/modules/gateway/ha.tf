# A site's second gateway (var.ha, docs/HA.md), as `linker up --ha` makes it (linker/control/plan_ha.py): the same
# launch configuration, security group and role as aws_instance.gateway, in a public subnet of another
# availability zone, with its own Elastic IP; both tagged linker:slot=2. The first gateway is the one a site
# without ha has, so turning ha on or off leaves it in place. The route tables are tagged for the site's gateways,
# whose role (module.config.role_policy with ha) may move routes only in tables tagged so.

locals {
  # Both gateways as the membership lists them (linker.contract.GatewayEntry); the tunnel address is the primary
  # private IPv4. Empty without ha.
  gateways = var.ha ? [
    { instance = aws_instance.gateway.id, az = data.aws_subnet.gateway[0].availability_zone, eip = aws_eip.gateway.public_ip, tunnel = aws_instance.gateway.private_ip },
    { instance = aws_instance.second[0].id, az = data.aws_subnet.second[0].availability_zone, eip = aws_eip.second[0].public_ip, tunnel = aws_instance.second[0].private_ip },
  ] : []
  # The routes are made to point at the lower instance id (docs/HA.md rule 3: the site starts with an owner).
  second_is_lower = var.ha ? sort([aws_instance.gateway.id, aws_instance.second[0].id])[0] != aws_instance.gateway.id : false
  route_eni       = local.second_is_lower ? aws_instance.second[0].primary_network_interface_id : aws_instance.gateway.primary_network_interface_id
  second_name     = "${local.name}-2"
}

data "aws_subnet" "gateway" {
  count = var.ha ? 1 : 0
  id    = var.subnet_id
}

# Two subnets in one zone are refused at plan, before anything is made, as the CLI refuses a VPC whose public
# subnets are all in one zone: both gateways would fall with that zone.
data "aws_subnet" "second" {
  count = var.ha ? 1 : 0
  id    = var.second_subnet_id

  lifecycle {
    precondition {
      condition     = var.second_subnet_id != null
      error_message = "ha = true needs second_subnet_id: a public subnet of VPC ${var.vpc_id} in another availability zone than subnet_id (${var.subnet_id}), for the site's second gateway."
    }
    postcondition {
      condition     = self.vpc_id == var.vpc_id
      error_message = "second_subnet_id (${var.second_subnet_id}) is not in VPC ${var.vpc_id}: give a public subnet of the site's VPC."
    }
    postcondition {
      condition     = self.availability_zone != data.aws_subnet.gateway[0].availability_zone
      error_message = "ha = true needs the two gateways in two availability zones, but subnet_id (${var.subnet_id}) and second_subnet_id (${var.second_subnet_id}) are both in ${self.availability_zone}: give second_subnet_id a public subnet of VPC ${var.vpc_id} in another zone (add one if it has none), or set ha = false."
    }
  }
}

resource "aws_eip" "second" {
  count  = var.ha ? 1 : 0
  domain = "vpc"
  tags   = merge(local.base_tags, { "linker:role" = "eip", "linker:slot" = "2" })
}

resource "aws_instance" "second" {
  #checkov:skip=CKV_AWS_126:As aws_instance.gateway: detailed monitoring adds 1-minute EC2 metrics at a cost per instance; the agent publishes the link's own health every 30 s, which is what alarms need.
  #checkov:skip=CKV_AWS_135:As aws_instance.gateway: current-generation instance types are EBS-optimized by default; forcing the flag fails for the types that are not (t2).
  count                       = var.ha ? 1 : 0
  ami                         = data.aws_ssm_parameter.ami.value
  instance_type               = var.instance_type
  subnet_id                   = data.aws_subnet.second[0].id
  vpc_security_group_ids      = [aws_security_group.gateway.id]
  iam_instance_profile        = aws_iam_instance_profile.gateway.name
  source_dest_check           = false
  user_data                   = module.config.user_data
  user_data_replace_on_change = true

  dynamic "credit_specification" {
    for_each = length(regexall("^t(2|3|3a|4g)\\.", var.instance_type)) > 0 ? [1] : []
    content {
      cpu_credits = "standard"
    }
  }

  root_block_device {
    encrypted   = true
    volume_type = "gp3"
  }

  metadata_options {
    http_tokens                 = "required"
    http_endpoint               = "enabled"
    http_put_response_hop_limit = 1
  }

  tags = merge(local.base_tags, {
    "linker:role"    = "instance"
    "linker:slot"    = "2"
    "linker:config"  = substr(sha256("${var.instance_type}\n${module.config.config_inputs}"), 0, 16)
    "linker:version" = local.linker_version
    "linker:package" = local.package_key
    Name             = local.second_name
  })

  depends_on = [aws_s3_object.wheel, aws_iam_role_policy.gateway]
}

resource "aws_eip_association" "second" {
  count         = var.ha ? 1 : 0
  allocation_id = aws_eip.second[0].id
  instance_id   = aws_instance.second[0].id
}

# linker:route:<link> = <site> (naming.route_table_tag) on each table: the gateways' role may move routes
# (ec2:ReplaceRoute) only in tables tagged so for their link and site.
resource "aws_ec2_tag" "route_table" {
  for_each    = { for t in var.route_table_ids : t => t if var.ha }
  resource_id = each.value
  key         = "linker:route:${var.link}"
  value       = var.site
}

# linker:route:<link>:<cidr> = <site> (naming.route_tag) for each route: which routes of a table the gateways move,
# as the CLI records each route it makes.
resource "aws_ec2_tag" "route" {
  for_each    = { for k, r in local.peer_routes : k => r if var.ha }
  resource_id = each.value.table
  key         = "linker:route:${var.link}:${each.value.cidr}"
  value       = var.site
}
