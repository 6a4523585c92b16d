"""linker: site-to-site VPC links across cloud regions over a WireGuard-protocol TUN daemon."""

__version__ = "0.1.0"
