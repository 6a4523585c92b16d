"""The local cloud: an embedded AWS endpoint and network namespaces mirroring EC2 state."""
