output "site" {
  description = "This site's name."
  value       = var.site
}

output "region" {
  description = "This site's region."
  value       = local.region
}

output "eip" {
  description = "The (first) gateway's Elastic IP: the endpoint its peers reach it at."
  value       = aws_eip.gateway.public_ip
}

output "second_eip" {
  description = "With ha, the second gateway's Elastic IP (a peer's security group admits both); null without ha."
  value       = var.ha ? aws_eip.second[0].public_ip : null
}

output "peer" {
  description = "What another site's peers list needs of this one: site, region, eip, cidrs, ha and second_eip."
  value = {
    site       = var.site
    region     = local.region
    eip        = aws_eip.gateway.public_ip
    cidrs      = local.cidrs
    ha         = var.ha
    second_eip = var.ha ? aws_eip.second[0].public_ip : null
  }
}

output "gateways" {
  description = "With ha, both gateways (instance, az, eip, tunnel: the primary private IPv4), for the peer_gateways of the other sites; empty without ha."
  value       = local.gateways
}

output "cidrs" {
  description = "The VPC's IPv4 CIDR blocks, routed to this site by its peers."
  value       = local.cidrs
}

output "instance_id" {
  description = "The (first) gateway instance."
  value       = aws_instance.gateway.id
}

output "second_instance_id" {
  description = "With ha, the second gateway instance; null without ha."
  value       = var.ha ? aws_instance.second[0].id : null
}

output "network_interface_id" {
  description = "The ENI the route tables send the peer CIDRs to (with ha: the first gateway's; the routes start at the lower instance id's and follow failovers)."
  value       = aws_instance.gateway.primary_network_interface_id
}

output "security_group_id" {
  description = "The gateway's security group."
  value       = aws_security_group.gateway.id
}

output "role_name" {
  description = "The gateway's IAM role (Session Manager access goes through it)."
  value       = aws_iam_role.gateway.name
}

output "bucket" {
  description = "The site's bucket holding the linker wheel."
  value       = aws_s3_bucket.wheel.id
}

output "membership" {
  description = "The membership document this module wrote to /linker/<link>/membership in its region."
  value       = module.config.membership
}
