output "gateways" {
  description = "Each site's gateway: Elastic IP, instance and the VPC CIDRs it routes to (with ha, the second gateway's too)."
  value = {
    (module.east.site) = { eip = module.east.eip, instance_id = module.east.instance_id, cidrs = module.east.cidrs, second_eip = module.east.second_eip, second_instance_id = module.east.second_instance_id }
    (module.west.site) = { eip = module.west.eip, instance_id = module.west.instance_id, cidrs = module.west.cidrs, second_eip = module.west.second_eip, second_instance_id = module.west.second_instance_id }
  }
}

output "membership" {
  description = "The link's membership document (the same in both regions)."
  value       = module.east.membership
}
