# One site of a linker link: the resources `linker up` makes in one region, from the same templates (through
# ../gateway-config) and with the same names and tags, except linker:managed-by=terraform. The CLI refuses to
# change a link whose resources carry that tag.

locals {
  name   = "linker-${var.link}-${var.site}"
  region = data.aws_region.current.name
  # Graviton families (t4g, c7gn, m6gd: a "g" after the generation digit; a1, the first) run the arm64 image, as
  # in the CLI.
  arch          = split(".", var.instance_type)[0] == "a1" || length(regexall("^[a-z]+[0-9]+g", split(".", var.instance_type)[0])) > 0 ? "arm64" : "x86_64"
  ami_parameter = coalesce(var.ami_parameter, "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${local.arch}")
  cidrs         = [for a in data.aws_vpc.this.cidr_block_associations : a.cidr_block if a.state == "associated"]

  # The wheel the gateway installs: the same bucket and content-addressed key as the CLI's (package.py).
  bucket         = "linker-${var.link}-${var.site}-${data.aws_caller_identity.current.account_id}"
  wheel_sha256   = filesha256(var.wheel)
  wheel_file     = basename(var.wheel)
  package_key    = "wheels/${substr(local.wheel_sha256, 0, 16)}/${local.wheel_file}"
  linker_version = split("-", local.wheel_file)[1]

  base_tags = merge(var.tags, {
    "linker:link"       = var.link
    "linker:site"       = var.site
    "linker:managed-by" = "terraform"
  })
  peer_routes = {
    for pair in setproduct(var.route_table_ids, flatten([for p in var.peers : p.cidrs])) :
    "${pair[0]}:${pair[1]}" => { table = pair[0], cidr = pair[1] }
  }
  # Each peer gateway's Elastic IP: both of a peer with two gateways (their security group rules, as the CLI's).
  peer_addresses = flatten([for p in var.peers : concat(
    [{ site = p.site, eip = p.eip, which = "" }],
    p.ha ? [{ site = p.site, eip = p.second_eip, which = " second gateway" }] : [],
  )])
}

data "aws_region" "current" {}
data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

data "aws_ssm_parameter" "ami" {
  name = local.ami_parameter
}

module "config" {
  source = "../gateway-config"

  link           = var.link
  site           = var.site
  region         = local.region
  partition      = data.aws_partition.current.partition
  port           = var.port
  mtu            = var.mtu
  linker_version = local.linker_version
  package_bucket = aws_s3_bucket.wheel.id
  package_key    = local.package_key
  package_sha256 = local.wheel_sha256
  ha             = var.ha
  # this site's two gateways (ha) and each peer's with two: the membership lists them (ha.tf)
  gateways = merge(var.peer_gateways, { (var.site) = local.gateways })
  sites = concat(
    [{ site = var.site, region = local.region, eip = aws_eip.gateway.public_ip, cidrs = local.cidrs, port = var.port }],
    [for p in var.peers : { site = p.site, region = p.region, eip = p.eip, cidrs = p.cidrs, port = var.port }],
  )
}

# --- the controller's wheel, fetched by the user-data with the instance role ---

resource "aws_s3_bucket" "wheel" {
  #checkov:skip=CKV_AWS_18:The bucket holds only linker's wheels (public code), read by the gateways' role; access logs would need a second bucket per site for nothing secret. CloudTrail data events cover it where an account wants them.
  #checkov:skip=CKV_AWS_21:Every wheel is written once under a content-addressed key (wheels/<sha256>/), so there is no older version to keep.
  #checkov:skip=CKV_AWS_144:Cross-region replication is not wanted: each site has its own bucket in its own region, rebuilt from the controller's wheel.
  #checkov:skip=CKV_AWS_145:Objects are encrypted at rest with S3's default encryption (SSE-S3); SSE-KMS would add a key policy and KMS calls for public code.
  #checkov:skip=CKV2_AWS_61:A lifecycle rule that expires wheels by age would remove the one a running gateway needs to reboot or be replaced; linker removes the bucket with the link.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new wheels; the user-data fetches the one it names.
  bucket        = local.bucket
  force_destroy = true # it holds nothing but wheels
  tags          = merge(local.base_tags, { "linker:role" = "bucket" })
}

resource "aws_s3_bucket_public_access_block" "wheel" {
  bucket                  = aws_s3_bucket.wheel.id
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = true
  restrict_public_buckets = true
}

resource "aws_s3_object" "wheel" {
  bucket       = aws_s3_bucket.wheel.id
  key          = local.package_key
  source       = var.wheel
  source_hash  = local.wheel_sha256
  content_type = "application/zip"
}

# --- the link's membership, read by the gateway agent ---

resource "aws_ssm_parameter" "membership" {
  #checkov:skip=CKV2_AWS_34:The membership holds only public keys, public addresses and CIDRs, read by every gateway of the link; nothing in it is secret, and SecureString would need kms:Decrypt on every gateway.
  name  = "/linker/${var.link}/membership"
  type  = "String"
  value = module.config.membership
  tags  = merge(local.base_tags, { "linker:role" = "membership" })
}

# --- the gateway ---

resource "aws_eip" "gateway" {
  domain = "vpc"
  tags   = merge(local.base_tags, { "linker:role" = "eip" })
}

resource "aws_security_group" "gateway" {
  name        = local.name
  vpc_id      = var.vpc_id
  description = "linker gateway of link ${var.link}, site ${var.site}: tunnel port from peers only"
  tags        = merge(local.base_tags, { "linker:role" = "security-group" })

  # Every description below stays within the characters EC2 accepts in a rule description (no apostrophe):
  # a-z A-Z 0-9 space and . _ - : / ( ) # , @ [ ] + = & ; { } ! $ *  (tests/terraform checks it).

  # The tunnel port, only from each peer gateway's Elastic IP (both of a peer with two gateways). No SSH: operators
  # use SSM Session Manager.
  dynamic "ingress" {
    for_each = local.peer_addresses
    content {
      description = "tunnel from ${ingress.value.site}${ingress.value.which}"
      protocol    = "udp"
      from_port   = var.port
      to_port     = var.port
      cidr_blocks = ["${ingress.value.eip}/32"]
    }
  }

  # Everything from the site's own VPC: security groups filter forwarded packets too, and what the gateway forwards
  # into the tunnels reaches its ENI from its own VPC. The peers' traffic arrives through the tunnel, never here.
  ingress {
    description = "traffic of the site VPC, forwarded into the tunnels"
    protocol    = "-1"
    from_port   = 0
    to_port     = 0
    cidr_blocks = local.cidrs
  }

  # Egress: the tunnel port to each peer's Elastic IP, what the tunnels deliver into the site's own VPC, and HTTPS
  # for the AWS APIs the agent and user-data call (SSM, S3, CloudWatch, EC2: no fixed addresses). DNS, NTP and the
  # instance metadata service are link-local and not filtered by security groups.
  dynamic "egress" {
    for_each = local.peer_addresses
    content {
      description = "tunnel to ${egress.value.site}${egress.value.which}"
      protocol    = "udp"
      from_port   = var.port
      to_port     = var.port
      cidr_blocks = ["${egress.value.eip}/32"]
    }
  }

  egress {
    description = "traffic from the tunnels, delivered into the site VPC"
    protocol    = "-1"
    from_port   = 0
    to_port     = 0
    cidr_blocks = local.cidrs
  }

  egress {
    description = "HTTPS to the AWS APIs (SSM, S3, CloudWatch, EC2)"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_iam_role" "gateway" {
  name               = local.name
  path               = "/linker/"
  description        = "linker gateway of link ${var.link}, site ${var.site}"
  assume_role_policy = module.config.trust_policy
  tags               = merge(local.base_tags, { "linker:role" = "iam-role" })
}

resource "aws_iam_role_policy" "gateway" {
  name   = "linker-gateway"
  role   = aws_iam_role.gateway.id
  policy = module.config.role_policy
}

resource "aws_iam_instance_profile" "gateway" {
  name = local.name
  path = "/linker/"
  role = aws_iam_role.gateway.name
  tags = merge(local.base_tags, { "linker:role" = "instance-profile" })
}

resource "aws_instance" "gateway" {
  #checkov:skip=CKV_AWS_126:Detailed monitoring adds 1-minute EC2 metrics at a cost per instance; the agent publishes the link's own health (handshake age, bytes) every 30 s, which is what alarms need.
  #checkov:skip=CKV_AWS_135:Current-generation instance types are EBS-optimized by default; forcing the flag fails for the types that are not (t2), and the gateway does almost no disk I/O.
  ami                         = data.aws_ssm_parameter.ami.value
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  vpc_security_group_ids      = [aws_security_group.gateway.id]
  iam_instance_profile        = aws_iam_instance_profile.gateway.name
  source_dest_check           = false
  user_data                   = module.config.user_data
  user_data_replace_on_change = true # a new configuration is a new gateway, as with the CLI

  # Burstable types (t2, t3, t3a, t4g) run with standard credits, as with the CLI: a CPU-bound data plane is
  # throttled to the baseline, never billed for surplus credits.
  dynamic "credit_specification" {
    for_each = length(regexall("^t(2|3|3a|4g)\\.", var.instance_type)) > 0 ? [1] : []
    content {
      cpu_credits = "standard"
    }
  }

  root_block_device {
    encrypted   = true # with the account's default EBS key (aws/ebs) unless the account sets another default
    volume_type = "gp3"
  }

  metadata_options {
    http_tokens                 = "required"
    http_endpoint               = "enabled"
    http_put_response_hop_limit = 1
  }

  tags = merge(local.base_tags, {
    "linker:role"    = "instance"
    "linker:config"  = substr(sha256("${var.instance_type}\n${module.config.config_inputs}"), 0, 16)
    "linker:version" = local.linker_version
    "linker:package" = local.package_key
    Name             = local.name
  })

  # The wheel and the role's policy must exist before the user-data runs.
  depends_on = [aws_s3_object.wheel, aws_iam_role_policy.gateway]
}

resource "aws_eip_association" "gateway" {
  allocation_id = aws_eip.gateway.id
  instance_id   = aws_instance.gateway.id
}

# What the routes are made to point at: the gateway's ENI; with ha "ha", since the gateways then move the routes
# themselves (failover) and Terraform must leave them where they are.
resource "terraform_data" "route_target" {
  input = var.ha ? "ha" : aws_instance.gateway.primary_network_interface_id
}

resource "aws_route" "to_peer" {
  for_each               = local.peer_routes
  route_table_id         = each.value.table
  destination_cidr_block = each.value.cidr
  # with ha, the lower instance id's (docs/HA.md rule 3), as the CLI makes them
  network_interface_id = local.route_eni

  lifecycle {
    # A failover moves a route to the other gateway: Terraform leaves it there. A new gateway without ha (a new
    # instance), or ha turned on or off, changes route_target and so makes the route again, at the new target.
    ignore_changes       = [network_interface_id]
    replace_triggered_by = [terraform_data.route_target]
  }
}
