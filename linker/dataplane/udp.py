"""The tunnel's UDP sockets: one IPv4 and one IPv6 (V6ONLY) on the same ListenPort, as wireguard-go binds.

Two sockets rather than one dual-stack socket keep IPv4 endpoints plain ``(dotted, port)`` tuples on the hot path:
nothing to map or un-map per datagram. Where IPv6 is unavailable (disabled in a namespace) only IPv4 is bound.

Peer lanes: for each peer endpoint the device knows, one more socket on the same port, connected to that endpoint
(SO_REUSEPORT; the kernel delivers a datagram to the connected socket whose 4-tuple it matches before the unbound
one). A peer's datagrams then queue apart from everyone else's: a flood of handshake initiations from other
addresses fills the main socket's buffer, not the lanes, so a real peer's handshake still gets in while the daemon
is flooded. An attacker who spoofs a peer's own address still shares its lane; the cookie mechanism and the
per-source rate limits are the defence there. At most ``MAX_LANES`` lanes (the first endpoints, in order).
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
# The receive side's standing queue, when the daemon is slower than the sender: what waits here delays every
# packet behind it. 4 MiB held 40 ms at these rates; 192 KiB (the kernel doubles it for bookkeeping: a few GRO
# batches) holds about 1.5 ms, and makes a bulk flow back off instead of queueing (tun.py's TX_QUEUE_LEN likewise).
# 128 KiB cost one stream 5-7 % of its throughput in drops (857 against 903-916 Mbit/s) for 6.3 against 7.9 ms
# at the 99th percentile under load, where wireguard-go and OpenVPN wait 11-15 ms (bench/tunnels.py, 2026-12-07).
RECEIVE_BUFFER = 192 << 10
# The send side queues nothing standing (the datagrams leave for the device at once); room for 16 GSO sends.
SEND_BUFFER = 1 << 20
MAX_LANES = 64

Endpoint = tuple[str, int]


class PortInUseError(UserError):
    """The ListenPort is taken: the operator's to fix (exit 2), not a bug."""

    kind = "port_in_use"


class UdpSockets:
    def __init__(self, port: int = 0, fwmark: int = 0, gro: bool = True, lanes: bool = True) -> None:
        self.gro = gro
        self.use_lanes = lanes
        self.v4: socket.socket | None = None
        self.v6: socket.socket | None = None
        self.lanes: dict[Endpoint, socket.socket] = {}
        self.port = 0
        self.fwmark = fwmark
        self.bind(port, fwmark)

    @property
    def sockets(self) -> list[socket.socket]:
        """Every socket to read from: the two bound to the port, then the peer lanes."""
        return [s for s in (self.v4, self.v6) if s is not None] + list(self.lanes.values())

    def sync_lanes(self, endpoints: set[Endpoint]) -> bool:
        """One lane per endpoint in ``endpoints`` (up to MAX_LANES), none for the others; True if any changed.

        A lane that cannot be made (the address family has no socket, a transient error) is simply not made: its
        peer's datagrams reach the main socket as before."""
        if not self.use_lanes:
            return False
        changed = False
        for endpoint in [e for e in self.lanes if e not in endpoints]:
            self.lanes.pop(endpoint).close()
            changed = True
        for endpoint in sorted(endpoints - set(self.lanes)):
            if len(self.lanes) >= MAX_LANES:
                break
            family = socket.AF_INET6 if ":" in endpoint[0] else socket.AF_INET
            if (self.v6 if family == socket.AF_INET6 else self.v4) is None:
                continue
            try:
                sock = self._open(family, self.port, self.fwmark, lane=True)
                sock.connect(endpoint)
            except OSError as exc:
                log.debug("no lane for %s: %s", endpoint[0], exc.strerror)
                continue
            self.lanes[endpoint] = sock
            changed = True
        return changed

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
        self.v4, self.v6, self.port, self.fwmark = v4, v6, chosen, fwmark

    def _open(self, family: int, port: int, fwmark: int, lane: bool = False) -> socket.socket:
        """A socket bound to ``port``; the port's first socket (not a ``lane``) must be the only one there."""
        if self.use_lanes and not lane:
            try:
                port = self._claim(family, port)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and family == socket.AF_INET:
                    raise PortInUseError(f"UDP port {port} is already in use",
                                         "stop what listens there or pick another ListenPort") from None
                raise
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if self.use_lanes:  # lanes join the port; only sockets of this same user may (the kernel checks)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            if fwmark:
                sock.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)
            try:
                sock.setsockopt(SOL_UDP, UDP_GRO, 1 if self.gro else 0)
            except OSError:
                log.info("no UDP GRO on this kernel: one datagram per receive")
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and family == socket.AF_INET and not lane:
                raise PortInUseError(f"UDP port {port} is already in use",
                                     "stop what listens there or pick another ListenPort") from None
            raise
        return sock

    @staticmethod
    def _claim(family: int, port: int) -> int:
        """Check that nobody holds ``port`` by binding it without SO_REUSEPORT (another daemon on the port, ours or
        not, makes that fail with EADDRINUSE); returns the port (the kernel's choice for 0). The reuse option is
        only for this daemon's own lanes: without this check a second daemon could share the port."""
        probe = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
            return int(probe.getsockname()[1])
        finally:
            probe.close()

    def set_fwmark(self, fwmark: int) -> None:
        self.fwmark = fwmark
        for s in self.sockets:
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)

    def for_host(self, host: str) -> socket.socket | None:
        return self.v6 if ":" in host else self.v4

    def close(self) -> None:
        """Close every socket, lanes included (a rebind makes new lanes on the new port at the next sync)."""
        for s in self.sockets:
            s.close()
        self.v4 = self.v6 = None
        self.lanes = {}
