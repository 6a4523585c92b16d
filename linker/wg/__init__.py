"""WireGuard protocol, sans-I/O: no sockets, no clocks, no randomness of its own."""
