"""The daemon's one event loop: epoll over the TUN fd, the UDP sockets, the UAPI socket and a signal wake-up fd,
plus a timer tick. No threads; every packet is handled to the end before the next is read.

The loop is thin: it reads, hands bytes to the protocol core (``linker.wg.device.Device``) and performs the
actions the core returns. Reads are batched per wake-up (bounded, so one direction cannot starve the other).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable

from linker.dataplane.udp import UdpSockets
from linker.wg.actions import Action, SendDatagram
from linker.wg.device import Device

log = logging.getLogger("linker.daemon")

TICK = 0.1  # seconds between timer runs (the core asks for at least every 100 ms)
BATCH = 64  # packets read per fd per wake-up
MAX_PACKET = 65535


class Loop:
    """Owns the epoll set. ``handlers`` maps extra fds (UAPI listener and clients) to callbacks."""

    def __init__(self, device: Device, tun_fd: int, udp: UdpSockets) -> None:
        self.device = device
        self.tun_fd = tun_fd
        self.udp = udp
        self.counters: Counter[str] = Counter()
        self.handlers: dict[int, Callable[[], None]] = {}
        self.running = False
        self.signals: list[int] = []
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._udp_fds: dict[int, socket.socket] = {}
        self._epoll.register(tun_fd, select.EPOLLIN)
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        self.watch_udp()

    # ------------------------------------------------------------------ registration

    def watch_udp(self) -> None:
        """(Re)register the UDP sockets, after a rebind."""
        for fd in list(self._udp_fds):
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass
        self._udp_fds = {s.fileno(): s for s in self.udp.sockets}
        for fd in self._udp_fds:
            self._epoll.register(fd, select.EPOLLIN)

    def add(self, fd: int, handler: Callable[[], None]) -> None:
        self.handlers[fd] = handler
        self._epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def install_signal_handlers(self, wanted: tuple[int, ...]) -> None:
        """Signals become entries in ``self.signals``, handled between wake-ups (never mid-packet)."""
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in wanted:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)

    # ------------------------------------------------------------------ the loop

    def run(self, on_signal: Callable[[int], None], tick: float = TICK) -> None:
        self.running = True
        monotonic = time.monotonic
        next_tick = monotonic() + tick
        poll = self._epoll.poll
        tun_fd = self.tun_fd
        wake_fd = self._wake_r.fileno()
        while self.running:
            timeout = next_tick - monotonic()
            events = poll(timeout if timeout > 0 else 0)
            for fd, _ in events:
                if fd == tun_fd:
                    self.from_tun()
                elif fd in self._udp_fds:
                    self.from_udp(self._udp_fds[fd])
                elif fd == wake_fd:
                    self._drain_wake()
                else:
                    handler = self.handlers.get(fd)
                    if handler is not None:
                        handler()
            while self.signals:
                on_signal(self.signals.pop(0))
            now = monotonic()
            if now >= next_tick:
                self.perform(self.device.tick(now))
                next_tick = now + tick

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    # ------------------------------------------------------------------ the packet paths

    def from_tun(self) -> None:
        read = os.read
        fd = self.tun_fd
        encapsulate = self.device.encapsulate
        now = time.monotonic()
        for _ in range(BATCH):
            try:
                packet = read(fd, MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.counters["tun_read_error"] += 1
                log.warning("reading the TUN device failed: %s", exc.strerror)
                return
            actions = encapsulate(packet, now)
            if actions:
                self.perform(actions)

    def from_udp(self, sock: socket.socket) -> None:
        recvfrom = sock.recvfrom
        decapsulate = self.device.decapsulate
        now = time.monotonic()
        for _ in range(BATCH):
            try:
                data, addr = recvfrom(MAX_PACKET)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ECONNREFUSED reported for an earlier send
                self.counters["udp_recv_error"] += 1
                log.debug("udp receive error: %s", exc.strerror)
                continue
            actions = decapsulate(data, (addr[0], addr[1]), now)
            if actions:
                self.perform(actions)

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if type(action) is SendDatagram:
                host = action.endpoint[0]
                sock = self.udp.v6 if ":" in host else self.udp.v4
                if sock is None:
                    self.counters["udp_send_no_socket"] += 1
                    continue
                try:
                    sock.sendto(action.data, action.endpoint)
                except (BlockingIOError, InterruptedError):
                    self.counters["udp_send_dropped"] += 1
                except OSError as exc:
                    self.counters["udp_send_error"] += 1
                    log.debug("udp send to %s failed: %s", host, exc.strerror)
            else:
                try:
                    os.write(self.tun_fd, action.packet)
                except OSError as exc:
                    self.counters["tun_write_error"] += 1
                    log.debug("TUN write failed: %s", exc.strerror)
