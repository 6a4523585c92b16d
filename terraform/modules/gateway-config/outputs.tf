output "agent_settings" {
  description = "/etc/linker/agent.json of the gateway."
  value       = local.agent_settings
}

output "service_unit" {
  description = "The systemd unit of the gateway agent."
  value       = local.service_unit
}

output "bootstrap_unit" {
  description = "The systemd oneshot that installs the gateway (the agent's unit requires it)."
  value       = local.bootstrap_unit
}

output "bootstrap_script" {
  description = "The bootstrap script: installs the gateway from its wheelhouse, retrying, and records each failure."
  value       = local.bootstrap_script
}

output "user_data" {
  description = "cloud-init user-data of the gateway (no secret in it)."
  value       = local.user_data
}

output "role_policy" {
  description = "The inline policy linker-gateway of the gateway's instance role."
  value       = local.role_policy
}

output "trust_policy" {
  description = "The instance role's trust policy: only EC2 may assume it."
  value       = local.trust_policy
}

output "membership" {
  description = "The link's membership document, read by every gateway from /linker/<link>/membership."
  value       = local.membership
}

output "config_inputs" {
  description = "What the spec decides of the instance's launch besides its type, one per line: the input of the linker:config tag, as linker/control/rollout.py hashes it (never the build: that is pinned by linker:version and linker:package)."
  value       = join("\n", [var.link, var.site, var.region, tostring(var.port), tostring(var.mtu), var.interface, var.package_bucket, var.agent_command, var.partition])
}
