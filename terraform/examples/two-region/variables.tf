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

variable "wheel" {
  description = "Path to the linker wheel the gateways run: python -m linker.control.package DIR writes it and prints its path."
  type        = string
}

variable "east" {
  description = "The first site: its region, VPC, public subnet and the route tables that get routes to the peer."
  type = object({
    region          = string
    vpc_id          = string
    subnet_id       = string
    route_table_ids = list(string)
  })
}

variable "west" {
  description = "The second site: its region, VPC, public subnet and the route tables that get routes to the peer."
  type = object({
    region          = string
    vpc_id          = string
    subnet_id       = string
    route_table_ids = list(string)
  })
}
