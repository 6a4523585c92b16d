output "gateways" {
  description = "Each site's gateway: Elastic IP, instance and the VPC CIDRs it routes to."
  value = {
    (module.east.site) = { eip = module.east.eip, instance_id = module.east.instance_id, cidrs = module.east.cidrs }
    (module.west.site) = { eip = module.west.eip, instance_id = module.west.instance_id, cidrs = module.west.cidrs }
  }
}

output "membership" {
  description = "The link's membership document (the same in both regions)."
  value       = module.east.membership
}
