variable "link" {
  description = "Name of the link this gateway belongs to (the CLI's --name)."
  type        = string
  default     = "default"
}

variable "site" {
  description = "Name of this site; linker uses the region name."
  type        = string
}

variable "vpc_id" {
  description = "The VPC to link."
  type        = string
}

variable "subnet_id" {
  description = "A public subnet of the VPC (its route table sends 0.0.0.0/0 to an internet gateway)."
  type        = string
}

variable "route_table_ids" {
  description = "Route tables of the VPC that get a route to each peer CIDR through this gateway."
  type        = list(string)
}

variable "peers" {
  description = "The other sites of the link: their gateway's Elastic IP and their VPC CIDRs."
  type = list(object({
    site  = string
    eip   = string
    cidrs = list(string)
  }))
  default = []
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

variable "instance_type" {
  description = "EC2 instance type of the gateway."
  type        = string
  default     = "t3.small"
}

variable "ami_parameter" {
  description = "Public SSM parameter naming the gateway AMI (Amazon Linux 2023, as the CLI uses)."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "install_source" {
  description = "What pip installs on the gateway: the exact linker version of the controller."
  type        = string
}

variable "linker_version" {
  description = "Version of linker the gateway runs (shown in the user-data header)."
  type        = string
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
