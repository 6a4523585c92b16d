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

variable "instance_type" {
  description = "EC2 instance type of the gateways."
  type        = string
  default     = "t3.micro"
}

variable "ha" {
  description = "Two gateways per site, in two availability zones (docs/HA.md): each site then needs second_subnet_id."
  type        = bool
  default     = false
}

variable "wheel" {
  description = "Path to the linker wheel the gateways run: python -m linker.control.package DIR writes it and prints its path."
  type        = string
}

variable "east" {
  description = "The first site: its region, VPC, public subnet (and with ha a second one in another zone) and the route tables that get routes to the peer."
  type = object({
    region           = string
    vpc_id           = string
    subnet_id        = string
    second_subnet_id = optional(string) # with ha: a public subnet in another availability zone
    route_table_ids  = list(string)
  })
}

variable "west" {
  description = "The second site: its region, VPC, public subnet (and with ha a second one in another zone) and the route tables that get routes to the peer."
  type = object({
    region           = string
    vpc_id           = string
    subnet_id        = string
    second_subnet_id = optional(string) # with ha: a public subnet in another availability zone
    route_table_ids  = list(string)
  })
}
