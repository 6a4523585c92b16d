output "eip" {
  description = "The gateway's Elastic IP: the endpoint its peers reach it at."
  value       = aws_eip.gateway.public_ip
}

output "instance_id" {
  description = "The gateway instance."
  value       = aws_instance.gateway.id
}

output "security_group_id" {
  description = "The gateway's security group."
  value       = aws_security_group.gateway.id
}

output "network_interface_id" {
  description = "The ENI the VPC routes to the peer CIDRs point at."
  value       = aws_instance.gateway.primary_network_interface_id
}

output "site" {
  description = "This site's entry of the link's membership document."
  value = {
    site   = var.site
    region = data.aws_region.current.name
    eip    = aws_eip.gateway.public_ip
    port   = var.port
  }
}
