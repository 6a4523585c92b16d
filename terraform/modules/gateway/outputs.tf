output "site" {
  description = "This site's name."
  value       = var.site
}

output "region" {
  description = "This site's region."
  value       = local.region
}

output "eip" {
  description = "The gateway's Elastic IP: the endpoint its peers reach it at."
  value       = aws_eip.gateway.public_ip
}

output "cidrs" {
  description = "The VPC's IPv4 CIDR blocks, routed to this site by its peers."
  value       = local.cidrs
}

output "instance_id" {
  description = "The gateway instance."
  value       = aws_instance.gateway.id
}

output "network_interface_id" {
  description = "The ENI the route tables send the peer CIDRs to."
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
