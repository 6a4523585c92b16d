variable "link" {
  description = "Name of the link this gateway belongs to (the CLI's --name): 1-24 lowercase letters, digits or '-'."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,23}$", var.link))
    error_message = "The link name must be 1-24 lowercase letters, digits or '-', starting with a letter or digit."
  }
}

variable "site" {
  description = "Name of this site. linker names a site after its region; keep to that so the CLI can read the link."
  type        = string
}

variable "vpc_id" {
  description = "The VPC of this site. Its associated IPv4 CIDR blocks are routed to the peers."
  type        = string
}

variable "subnet_id" {
  description = "A public subnet of the VPC (its route table sends 0.0.0.0/0 to an internet gateway): the gateway's, the first gateway's with ha."
  type        = string
}

variable "ha" {
  description = "Two gateways for this site (docs/HA.md), as `linker up --ha`: the second in second_subnet_id, another availability zone, each with its own Elastic IP; the gateways move the site's routes between them when one fails."
  type        = bool
  default     = false
}

variable "second_subnet_id" {
  description = "With ha: a public subnet of the VPC in another availability zone than subnet_id, for the second gateway. Ignored without ha."
  type        = string
  default     = null
}

variable "route_table_ids" {
  description = "Route tables that get a route to each peer CIDR through this gateway (the CLI uses every route table of the VPC that has a subnet, and the main one)."
  type        = list(string)
}

variable "peers" {
  description = "The other sites of the link: name, region, their (first) gateway's Elastic IP, their VPC CIDRs and, for a peer with two gateways (ha), its second gateway's Elastic IP (another instance of this module's peer output; or its site, region, eip and cidrs outputs for a peer with one)."
  type = list(object({
    site       = string
    region     = string
    eip        = string
    cidrs      = list(string)
    ha         = optional(bool, false)
    second_eip = optional(string)
  }))
  default = []

  validation {
    # "ha" rather than whether second_eip is null: an address still to be allocated is unknown at plan, and the
    # security group's rules must be counted then
    condition     = alltrue([for p in var.peers : !p.ha || p.second_eip != null])
    error_message = "A peer with ha = true needs its second_eip (the peer's second_eip output)."
  }
}

variable "peer_gateways" {
  description = "For each peer site with ha, by site name: its two gateways (instance, az, eip, tunnel), as another instance of this module's gateways output. The membership lists them, so that this site's gateways peer with both. Apart from peers because it names instances: a site's instances wait for its security group, which waits for its peers' Elastic IPs, not for their instances."
  type = map(list(object({
    instance = string
    az       = string
    eip      = string
    tunnel   = string
  })))
  default = {}
}

variable "port" {
  description = "UDP port of the tunnels; the same at every site of the link."
  type        = number
  default     = 51820
}

variable "mtu" {
  description = "MTU of the tunnel device."
  type        = number
  default     = 1420
}

variable "instance_type" {
  description = "EC2 instance type of the gateway (Graviton types get the arm64 image)."
  type        = string
  default     = "t3.micro"
}

variable "ami_parameter" {
  description = "Public SSM parameter naming the gateway's AMI; null: Amazon Linux 2023 of the instance type's architecture, as the CLI uses."
  type        = string
  default     = null
}

variable "wheel" {
  description = "Path to the linker wheelhouse the gateway installs from: the gateway wheel and its pinned dependencies for the instance's architecture (python -m linker.control.package DIR [x86_64|arm64] writes the CLI's own). It is uploaded to the site's bucket under wheels/<sha256[:16]>/ and the user-data installs from it with pip --no-index after checking its SHA-256."
  type        = string

  validation {
    condition     = can(regex("^linker-[^-]+-gateway-.*\\.tar$", basename(var.wheel)))
    error_message = "The wheel must be a linker wheelhouse (linker-<version>-gateway-...tar), as python -m linker.control.package writes."
  }
}

variable "tags" {
  description = "Extra tags for every resource (the linker:* tags win over these)."
  type        = map(string)
  default     = {}
}
