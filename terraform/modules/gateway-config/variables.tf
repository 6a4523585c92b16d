variable "link" {
  description = "Name of the link (the CLI's --name)."
  type        = string
}

variable "site" {
  description = "Name of this site; linker names a site after its region."
  type        = string
}

variable "region" {
  description = "Region of this site's gateway."
  type        = string
}

variable "partition" {
  description = "AWS partition of the region (aws, aws-cn, aws-us-gov)."
  type        = string
  default     = "aws"
}

variable "port" {
  description = "UDP port of the tunnels."
  type        = number
  default     = 51820
}

variable "mtu" {
  description = "MTU of the tunnel device."
  type        = number
  default     = 1420
}

variable "ha" {
  description = "Whether the site has two gateways (docs/HA.md): the role policy then lets them move the site's routes in the route tables tagged linker:route:<link> = <site>."
  type        = bool
  default     = false
}

variable "interface" {
  description = "Name of the tunnel device on the gateway."
  type        = string
  default     = "linker0"
}

variable "agent_command" {
  description = "The linker command on the gateway (where the user-data installs it)."
  type        = string
  default     = "/opt/linker/bin/linker"
}

variable "linker_version" {
  description = "Version of the linker wheel the gateway installs (shown in the user-data header)."
  type        = string
}

variable "package_bucket" {
  description = "S3 bucket holding the linker wheel; the instance role may read wheels/* in it."
  type        = string
}

variable "package_key" {
  description = "S3 key of the linker wheel, under wheels/."
  type        = string
}

variable "package_sha256" {
  description = "SHA-256 (hex) of the wheel: the gateway refuses to install a wheel with another hash."
  type        = string
}

variable "sites" {
  description = "Every site of the link, this one included, for the membership document."
  type = list(object({
    site   = string
    region = string
    eip    = string
    cidrs  = list(string)
    port   = number
  }))
  default = []
}

variable "gateways" {
  description = "The sites of the link with two gateways (docs/HA.md), by name: their gateways (instance, az, eip, tunnel: the primary private IPv4), in any order (an empty list: a site with one gateway). The membership lists them sorted by instance id, marks the site ha and names the lower id's address as the site's eip, as the CLI writes a new site with two gateways."
  type = map(list(object({
    instance = string
    az       = string
    eip      = string
    tunnel   = string
  })))
  default = {}
}
