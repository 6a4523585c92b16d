variable "link" {
  description = "Name of the link."
  type        = string
  default     = "default"
}

variable "port" {
  description = "UDP port of the tunnels."
  type        = number
  default     = 51820
}

variable "install_source" {
  description = "What pip installs on the gateways (the controller's exact linker version)."
  type        = string
}

variable "linker_version" {
  description = "Version of linker the gateways run."
  type        = string
}

variable "east" {
  description = "The first site: its region, VPC, public subnet, route tables and CIDRs."
  type = object({
    region          = string
    vpc_id          = string
    subnet_id       = string
    route_table_ids = list(string)
    cidrs           = list(string)
  })
}

variable "west" {
  description = "The second site: its region, VPC, public subnet, route tables and CIDRs."
  type = object({
    region          = string
    vpc_id          = string
    subnet_id       = string
    route_table_ids = list(string)
    cidrs           = list(string)
  })
}
