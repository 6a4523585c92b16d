output "gateways" {
  description = "Each site's gateway: Elastic IP and instance."
  value = {
    (var.east.region) = { eip = module.east.eip, instance_id = module.east.instance_id }
    (var.west.region) = { eip = module.west.eip, instance_id = module.west.instance_id }
  }
}
