terraform {
  # No provider: `terraform apply` of this module alone works offline (tests/terraform does it).
  required_version = ">= 1.0"
}
