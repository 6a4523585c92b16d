# One site of a linker link, the same resources as `linker up` makes, from the same templates (../../../templates).
# Resources carry linker:managed-by=terraform: the CLI refuses to change a link that Terraform manages.

locals {
  name             = "linker-${var.link}-${var.site}"
  parameter_prefix = "/linker/${var.link}"
  templates        = "${path.module}/../../../templates"
  base_tags = merge(var.tags, {
    "linker:link"       = var.link
    "linker:site"       = var.site
    "linker:managed-by" = "terraform"
  })
  agent_settings = jsonencode({
    interface   = "linker0"
    link        = var.link
    listen_port = var.port
    mtu         = var.mtu
    region      = data.aws_region.current.name
    site        = var.site
  })
  service_unit = templatefile("${local.templates}/linker-gateway.service.tftpl", {
    link          = var.link
    site          = var.site
    region        = data.aws_region.current.name
    agent_command = "/opt/linker/bin/linker"
  })
  user_data = templatefile("${local.templates}/user-data.yaml.tftpl", {
    link           = var.link
    site           = var.site
    region         = data.aws_region.current.name
    version        = var.linker_version
    agent_settings = local.agent_settings
    service_unit   = local.service_unit
    install_source = var.install_source
  })
  peer_routes = flatten([
    for table in var.route_table_ids : [
      for peer in var.peers : [
        for cidr in peer.cidrs : { key = "${table}:${cidr}", table = table, cidr = cidr }
      ]
    ]
  ])
}

data "aws_region" "current" {}
data "aws_partition" "current" {}

data "aws_ssm_parameter" "ami" {
  name = var.ami_parameter
}

resource "aws_eip" "gateway" {
  domain = "vpc"
  tags   = merge(local.base_tags, { "linker:role" = "eip" })
}

resource "aws_security_group" "gateway" {
  name        = local.name
  vpc_id      = var.vpc_id
  description = "linker gateway of link ${var.link}, site ${var.site}: tunnel port from peers only"
  tags        = merge(local.base_tags, { "linker:role" = "security-group" })

  # The tunnel port, only from each peer gateway's Elastic IP. No SSH: operators use SSM Session Manager.
  dynamic "ingress" {
    for_each = var.peers
    content {
      description = "tunnel from ${ingress.value.site}"
      protocol    = "udp"
      from_port   = var.port
      to_port     = var.port
      cidr_blocks = ["${ingress.value.eip}/32"]
    }
  }

  # Traffic of the peer VPCs, forwarded through the tunnel.
  dynamic "ingress" {
    for_each = var.peers
    content {
      description = "traffic of ${ingress.value.site}"
      protocol    = "-1"
      from_port   = 0
      to_port     = 0
      cidr_blocks = ingress.value.cidrs
    }
  }

  egress {
    protocol    = "-1"
    from_port   = 0
    to_port     = 0
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_iam_role" "gateway" {
  name = local.name
  path = "/linker/"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = merge(local.base_tags, { "linker:role" = "iam-role" })
}

resource "aws_iam_role_policy" "gateway" {
  name = "linker-gateway"
  role = aws_iam_role.gateway.id
  policy = templatefile("${local.templates}/instance-role-policy.json.tftpl", {
    partition        = data.aws_partition.current.partition
    region           = data.aws_region.current.name
    parameter_prefix = local.parameter_prefix
    site_prefix      = "${local.parameter_prefix}/sites/${var.site}"
    metric_namespace = "Linker"
  })
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.gateway.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "gateway" {
  name = local.name
  path = "/linker/"
  role = aws_iam_role.gateway.name
  tags = merge(local.base_tags, { "linker:role" = "instance-profile" })
}

resource "aws_instance" "gateway" {
  ami                    = data.aws_ssm_parameter.ami.value
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = [aws_security_group.gateway.id]
  iam_instance_profile   = aws_iam_instance_profile.gateway.name
  source_dest_check      = false
  user_data              = local.user_data

  metadata_options {
    http_tokens                 = "required"
    http_endpoint               = "enabled"
    http_put_response_hop_limit = 1
  }

  tags        = merge(local.base_tags, { "linker:role" = "instance", Name = local.name })
  volume_tags = merge(local.base_tags, { "linker:role" = "instance" })
}

resource "aws_eip_association" "gateway" {
  allocation_id = aws_eip.gateway.id
  instance_id   = aws_instance.gateway.id
}

resource "aws_route" "to_peer" {
  for_each               = { for r in local.peer_routes : r.key => r }
  route_table_id         = each.value.table
  destination_cidr_block = each.value.cidr
  network_interface_id   = aws_instance.gateway.primary_network_interface_id
}
