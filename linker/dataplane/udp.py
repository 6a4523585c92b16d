"""The tunnel's UDP sockets: one IPv4 and one IPv6 (V6ONLY) on the same ListenPort, as wireguard-go binds.

Two sockets rather than one dual-stack socket keep IPv4 endpoints plain ``(dotted, port)`` tuples on the hot path:
nothing to map or un-map per datagram. Where IPv6 is unavailable (disabled in a namespace) only IPv4 is bound.
"""

from __future__ import annotations

import errno
import logging
import socket

from linker.errors import UserError

log = logging.getLogger("linker.daemon")

SO_MARK = 36
SOL_UDP = 17
UDP_SEGMENT = 103  # send: one sendmsg carries many datagrams of one size (GSO)
UDP_GRO = 104  # receive: one recvmsg returns many datagrams of one size, the size in a cmsg
SOCKET_BUFFER = 4 << 20  # room for bursts while the loop is busy with the other direction


class PortInUseError(UserError):
    """The ListenPort is taken: the operator's to fix (exit 2), not a bug."""

    kind = "port_in_use"


class UdpSockets:
    def __init__(self, port: int = 0, fwmark: int = 0, gro: bool = True) -> None:
        self.gro = gro
        self.v4: socket.socket | None = None
        self.v6: socket.socket | None = None
        self.port = 0
        self.bind(port, fwmark)

    @property
    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.v4, self.v6) if s is not None]

    def bind(self, port: int, fwmark: int = 0) -> None:
        """(Re)bind both sockets to ``port`` (0: a random free port). Raises PortInUseError."""
        for attempt in range(10):
            v4 = self._open(socket.AF_INET, port, fwmark)
            chosen = v4.getsockname()[1]
            try:
                v6: socket.socket | None = self._open(socket.AF_INET6, chosen, fwmark)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and port == 0 and attempt < 9:
                    v4.close()
                    continue  # the random port is free for v4 only: draw again
                if exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EADDRINUSE):
                    log.warning("no IPv6 socket (%s): IPv4 endpoints only", exc.strerror)
                    v6 = None
                else:
                    v4.close()
                    raise
            break
        self.close()
        self.v4, self.v6, self.port = v4, v6, chosen

    def _open(self, family: int, port: int, fwmark: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            if fwmark:
                sock.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)
            try:
                sock.setsockopt(SOL_UDP, UDP_GRO, 1 if self.gro else 0)
            except OSError:
                log.info("no UDP GRO on this kernel: one datagram per receive")
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and family == socket.AF_INET:
                raise PortInUseError(f"UDP port {port} is already in use",
                                     "stop what listens there or pick another ListenPort") from None
            raise
        return sock

    def set_fwmark(self, fwmark: int) -> None:
        for s in self.sockets:
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)

    def for_host(self, host: str) -> socket.socket | None:
        return self.v6 if ":" in host else self.v4

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.v4 = self.v6 = None
