"""The thin I/O around linker.wg: TUN device, UDP socket, event loop, UAPI socket."""
