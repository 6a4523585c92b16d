# The provider-free half of the gateway module: what lands on a gateway, rendered from linker/templates/ (the very files
# and variables the CLI renders them with, linker/control/render.py), and the link's membership document in the
# schema of linker.gateway.membership.Membership. tests/terraform compares every output with the CLI's.

locals {
  templates        = "${path.module}/../../../linker/templates"
  parameter_prefix = "/linker/${var.link}"

  agent_settings = templatefile("${local.templates}/agent.json.tftpl", {
    link        = var.link
    site        = var.site
    region      = var.region
    listen_port = var.port
    mtu         = var.mtu
    interface   = var.interface
  })

  service_unit = templatefile("${local.templates}/linker-gateway.service.tftpl", {
    link          = var.link
    site          = var.site
    region        = var.region
    agent_command = var.agent_command
  })

  bootstrap_command = "/usr/local/sbin/linker-bootstrap"

  bootstrap_unit = templatefile("${local.templates}/linker-bootstrap.service.tftpl", {
    link              = var.link
    site              = var.site
    region            = var.region
    bootstrap_command = local.bootstrap_command
  })

  # Installs the gateway from the wheelhouse, retrying; records each failure in the site's bootstrap parameter.
  bootstrap_script = templatefile("${local.templates}/linker-bootstrap.sh.tftpl", {
    link                = var.link
    site                = var.site
    region              = var.region
    bootstrap_parameter = "${local.parameter_prefix}/sites/${var.site}/bootstrap"
    package_bucket      = var.package_bucket
    package_key         = var.package_key
    package_file        = basename(var.package_key)
    package_sha256      = var.package_sha256
  })

  user_data = templatefile("${local.templates}/user-data.yaml.tftpl", {
    link              = var.link
    site              = var.site
    region            = var.region
    version           = var.linker_version
    agent_settings    = local.agent_settings
    service_unit      = local.service_unit
    bootstrap_unit    = local.bootstrap_unit
    bootstrap_script  = local.bootstrap_script
    bootstrap_command = local.bootstrap_command
  })

  base_role_policy = templatefile("${local.templates}/instance-role-policy.json.tftpl", {
    partition        = var.partition
    region           = var.region
    package_bucket   = var.package_bucket
    parameter_prefix = local.parameter_prefix
    site_prefix      = "${local.parameter_prefix}/sites/${var.site}"
    metric_namespace = "Linker"
  })

  # A site with two gateways (docs/HA.md): they may read route tables and move routes only in those tagged
  # linker:route:<link> = <site>, as render.role_policy adds them for the CLI.
  ha_role_statements = jsondecode(templatefile("${local.templates}/instance-role-policy-ha.json.tftpl", {
    partition       = var.partition
    region          = var.region
    route_table_tag = "linker:route:${var.link}"
    site            = var.site
  })).Statement

  role_policy = var.ha ? jsonencode({
    Version   = jsondecode(local.base_role_policy).Version
    Statement = concat(jsondecode(local.base_role_policy).Statement, local.ha_role_statements)
  }) : local.base_role_policy

  trust_policy = templatefile("${local.templates}/instance-trust-policy.json.tftpl", {})

  # A site with two gateways lists them as [instance, az, eip, tunnel] sorted by instance id
  # (linker.contract.GatewayEntry); its eip is the lower id's, which the routes point at first (docs/HA.md rule 3).
  ha_gateways = {
    for site, listed in var.gateways : site => [
      for id in sort([for g in listed : g.instance]) :
      [for g in listed : [g.instance, g.az, g.eip, g.tunnel] if g.instance == id][0]
    ] if length(listed) > 0 # a site with one gateway may be given with none
  }

  # Sites sorted by name (values() orders by key), as the controller writes them. "ha" and "gateways" only for a
  # site with two gateways: a site with one is written as before HA (linker.contract.SiteEntry.to_dict).
  membership = jsonencode({
    schema = 1
    link   = var.link
    sites = values({
      for s in var.sites : s.site => merge(
        {
          site   = s.site
          region = s.region
          eip    = contains(keys(local.ha_gateways), s.site) ? local.ha_gateways[s.site][0][2] : s.eip
          cidrs  = s.cidrs
          port   = s.port
        },
        { for k, v in { ha = true, gateways = lookup(local.ha_gateways, s.site, []) } : k => v if contains(keys(local.ha_gateways), s.site) },
      )
    })
  })
}
