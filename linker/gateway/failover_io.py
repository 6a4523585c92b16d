"""The failover shell's I/O (docs/HA.md): the two UDP sockets on the agent port and the loop that drives the shell.

- The *tunnel* socket is bound to the TUN device: announcements, relay requests and relayed probes, to and from
  remote gateways' tunnel addresses (cryptokey routing authenticates their sources; a host of the VPC cannot reach
  it). The *VPC* socket takes the rest, of which the shell hears only the sibling. Both are bound to this gateway's
  tunnel address and the agent port with SO_REUSEADDR: a socket bound to a device wins that device's datagrams.
- Both set IP_RECVERR: an ICMP port unreachable for a probe we sent (the target's agent is dead, its kernel is not)
  comes back on the socket's error queue with our datagram, and is reported as ``Refused``.
- ``FailoverLoop`` waits on both sockets, hands what arrives to the shell and ticks it every ``TICK``; AWS jobs run
  on one worker thread, in order, so that a call that hangs (an unreachable API) never stops the probes.

Opening the tunnel socket needs CAP_NET_RAW (SO_BINDTODEVICE) and the TUN device: until the daemon made it, the
loop retries every second, and it opens the sockets again when the device is made again (a restarted daemon).
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from linker.gateway.failover_shell import TUNNEL, VPC, FailoverShell

log = logging.getLogger("linker.gateway")

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)  # Linux's value; Python 3.11 does not name it
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
SO_EE_ORIGIN_ICMP = 2
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err: errno, origin, type, code, pad, info, data
TICK = 0.1  # seconds between ticks of the shell: probes are due every 0.5 s
MAX_DATAGRAM = 2048  # the largest failover message is 206 bytes; anything longer is not one
MAX_READS = 256  # datagrams read from one socket per wake-up, so that a flood cannot starve the other or the tick


@dataclass(frozen=True)
class Datagram:
    data: bytes
    source: str


@dataclass(frozen=True)
class Refused:
    """Port unreachable for our datagram ``payload`` to ``destination``."""

    payload: bytes
    destination: str


def refused_errno(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The errno of an IP_RECVERR control message, when an ICMP error caused it; None otherwise."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_RECVERR and len(data) >= _EXTENDED_ERR.size:
            code, origin, *_ = _EXTENDED_ERR.unpack_from(data)
            return int(code) if origin == SO_EE_ORIGIN_ICMP else None
    return None


def open_socket(address: str, port: int, device: str | None) -> socket.socket:
    """A non-blocking UDP socket on ``address``:``port`` with IP_RECVERR, bound to ``device`` when given. Raises
    OSError (no such device, no CAP_NET_RAW, the port taken)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        if device:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
        sock.bind((address, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def read_socket(sock: socket.socket) -> list[Datagram | Refused]:
    """What is waiting on ``sock``: its error queue first (which also clears the pending error), then datagrams."""
    out: list[Datagram | Refused] = []
    for _ in range(MAX_READS):
        try:
            data, ancillary, _, address = sock.recvmsg(MAX_DATAGRAM, 1024, MSG_ERRQUEUE)
        except OSError:
            break  # EAGAIN: the queue is empty
        if refused_errno(ancillary) == errno.ECONNREFUSED and address:
            out.append(Refused(data, address[0]))
    for _ in range(MAX_READS):
        try:
            data, address = sock.recvfrom(MAX_DATAGRAM)
        except ConnectionRefusedError:
            continue  # the pending error of an entry already read from the queue
        except OSError:
            break
        out.append(Datagram(data, address[0]))
    return out


class AgentSockets:
    """The tunnel and VPC sockets of one gateway (``open``), and sending on them. Used by one loop only."""

    def __init__(self, tunnel: socket.socket, vpc: socket.socket, port: int, device: str) -> None:
        self.sockets = {TUNNEL: tunnel, VPC: vpc}
        self.port, self.device = port, device
        self.device_index = _index(device)

    @classmethod
    def open(cls, address: str, port: int, device: str) -> AgentSockets:
        """Raises OSError when either cannot be opened (nothing is left open then)."""
        tunnel = open_socket(address, port, device)
        try:
            vpc = open_socket(address, port, None)
        except OSError:
            tunnel.close()
            raise
        return cls(tunnel, vpc, port, device)

    def stale(self) -> bool:
        """The TUN device is gone or was made again: the tunnel socket is bound to the old one."""
        return _index(self.device) != self.device_index

    def send(self, path: str, address: str, data: bytes) -> None:
        """Send ``data`` to ``address``'s agent port. A port unreachable that arrived since the last read is the
        socket's pending error, which fails the next send once (and is cleared by it): that send is made again, and
        the error itself is still read from the error queue."""
        sock = self.sockets[path]
        for _ in range(2):
            try:
                sock.sendto(data, (address, self.port))
                return
            except ConnectionRefusedError:
                continue
            except OSError as exc:  # no route yet, a full buffer: a probe lost, which the timeouts decide about
                log.debug("cannot send to %s: %s", address, exc, extra={"endpoint": address})
                return

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def _index(device: str) -> int | None:
    try:
        return socket.if_nametoindex(device)
    except OSError:
        return None


class FailoverLoop:
    """Runs ``shell`` on its own thread: ``start``, then ``stop`` (joins). ``opener`` opens the sockets (retried
    every second while it raises OSError); ``clock`` is monotonic."""

    def __init__(self, make_shell: Callable[[Callable[[str, str, bytes], None], Callable[[Callable[[], None]], None]],
                                            FailoverShell],
                 opener: Callable[[], AgentSockets], clock: Callable[[], float] = time.monotonic) -> None:
        self._opener, self._clock = opener, clock
        self._sockets: AgentSockets | None = None
        self._open_failed = False
        self._stop = threading.Event()
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="failover-aws")
        self.shell = make_shell(self._send, self._submit)
        self._thread = threading.Thread(target=self._run, name="failover", daemon=True)

    def _send(self, path: str, address: str, data: bytes) -> None:
        if self._sockets is not None:
            self._sockets.send(path, address, data)

    def _submit(self, job: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                job()
            except Exception:  # a bug in a job must not stop failover; it stays loud
                log.exception("failover AWS job failed")
        if not self._stop.is_set():
            self._jobs.submit(guarded)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._jobs.shutdown(wait=False, cancel_futures=True)

    def _open(self, selector: selectors.BaseSelector) -> None:
        try:
            self._sockets = self._opener()
        except OSError as exc:  # said once per outage, not every second (the daemon may take a while)
            (log.debug if self._open_failed else log.warning)("failover sockets not open yet, retrying: %s", exc)
            self._open_failed = True
            return
        if self._open_failed:
            log.info("failover sockets open")
        self._open_failed = False
        for path, sock in self._sockets.sockets.items():
            selector.register(sock, selectors.EVENT_READ, path)

    def _close(self, selector: selectors.BaseSelector) -> None:
        if self._sockets is not None:
            for sock in self._sockets.sockets.values():
                selector.unregister(sock)
            self._sockets.close()
            self._sockets = None

    def _run(self) -> None:
        next_check = 0.0
        with selectors.DefaultSelector() as selector:
            try:
                while not self._stop.is_set():
                    now = self._clock()
                    if now >= next_check:
                        next_check = now + 1.0
                        if self._sockets is not None and self._sockets.stale():
                            log.info("the TUN device was made again: reopening the failover sockets")
                            self._close(selector)
                        if self._sockets is None:
                            self._open(selector)
                    try:
                        self._once(selector)
                    except Exception:  # a bug must not end failover for good: said loudly, and the loop goes on
                        log.exception("failover loop error")
                        self._stop.wait(1.0)
            finally:
                self._close(selector)

    def _once(self, selector: selectors.BaseSelector) -> None:
        for key, _ in selector.select(TICK if self._sockets else 1.0):
            for item in read_socket(key.fileobj):  # type: ignore[arg-type]
                if isinstance(item, Refused):
                    self.shell.refused(key.data, item.payload, item.destination, self._clock())
                else:
                    self.shell.received(key.data, item.data, item.source, self._clock())
        self.shell.tick(self._clock())
