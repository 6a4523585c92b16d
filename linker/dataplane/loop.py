"""The daemon's one event loop: epoll over the TUN fd, the UDP sockets, the UAPI socket and a signal wake-up fd.
No threads, and no periodic wake-up: the loop sleeps until an fd is readable or the protocol core's next timer
deadline (``Device.next_deadline``, kept by a timerfd: alarm.py), and matches the peer lanes to the endpoints only
when they may have changed. An idle tunnel costs no CPU, and its next packet finds nothing queued ahead of it.

The loop is thin: it reads, hands bytes to the protocol core (``linker.wg.device.Device``) and performs the
actions the core returns. Each wake-up reads a bounded batch (so one direction cannot starve the other) and the
batch crosses the kernel boundary in as few calls as it can: sealed datagrams for one peer leave in one
``sendmsg`` with UDP GSO, received datagrams arrive GRO-coalesced in one ``recvmsg``, and decrypted TCP segments of
one flow are written to the TUN device as one super-segment (offload.py). Each falls back to one call per packet
if the kernel refuses it (output.py performs the core's actions). A lone packet (a wake-up after a quiet spell) is
read as bytes, takes the core's one-packet fast path and leaves by the same send or write that the batch paths use
for anything they do not batch. Every event is counted in one ``LoopCounters``.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import select
import signal
import socket
import sys
from collections import Counter
from collections.abc import Callable
from time import monotonic

from linker.dataplane.alarm import Alarm
from linker.dataplane.counters import LoopCounters
from linker.dataplane.offload import GSO_NONE, PLAIN, VNET_HDR_LEN
from linker.dataplane.output import Output
from linker.dataplane.tso import SegmentError, segment
from linker.dataplane.udp import SOL_UDP, UDP_GRO, UdpSockets
from linker.wg.actions import Action
from linker.wg.device import Device

log = logging.getLogger("linker.daemon")

LANE_SYNC = 1.0  # seconds at least between matchings of the peer lanes (udp.py) to the peers' endpoints
BATCH = 64  # packets read per fd per wake-up
MAX_PACKET = 65535 + VNET_HDR_LEN
MAX_DATAGRAM = 65536  # one receive, GRO-coalesced or not, as the batch path's buffer
_CMSG_SPACE = socket.CMSG_SPACE(4)  # the UDP_GRO cmsg: an int, the segment size
OFFLOADS = frozenset({"gso", "gro", "coalesce", "tso"})
# TSO is not on by default: a CPython daemon must finish every segment's TCP checksum itself, which costs more than
# the reads it saves (measured: about 15 % more CPU per GB, and the TUN ring's packet count no longer bounds its
# bytes; README "Performance")
DEFAULT_OFFLOADS = OFFLOADS - {"tso"}


def _gro_segment(ancdata: list, size: int) -> int:
    """The size of each datagram in a receive of ``size`` bytes, from its UDP_GRO control message (``size`` when
    there is none: one datagram)."""
    for level, kind, data in ancdata:
        if level == SOL_UDP and kind == UDP_GRO:
            return int.from_bytes(data[:4], sys.byteorder) or size
    return size


def offloads_from_env(value: str | None) -> frozenset[str]:
    """LINKER_OFFLOADS: a comma-separated subset of gso, gro, coalesce, tso, or "none" (default: all but tso).

    A troubleshooting and benchmarking knob: each batching technique can be ruled out, or TSO tried, without a
    rebuild."""
    if value is None:
        return DEFAULT_OFFLOADS
    chosen = frozenset(v.strip() for v in value.split(",") if v.strip() and v.strip() != "none")
    unknown = chosen - OFFLOADS
    if unknown:
        raise ValueError(f"unknown offload(s) {', '.join(sorted(unknown))}; choose from gso, gro, coalesce, tso, none")
    return chosen


class Loop(Output):
    """Owns the epoll set. ``handlers`` maps extra fds (UAPI listener and clients) to callbacks."""

    def __init__(self, device: Device, tun_fd: int, udp: UdpSockets,
                 offloads: frozenset[str] = DEFAULT_OFFLOADS) -> None:
        self.device = device
        self.tun_fd = tun_fd
        self.udp = udp
        self.counters = LoopCounters()
        self.handlers: dict[int, Callable[[], None]] = {}
        self.running = False
        self.failure: str | None = None  # why the loop stopped on its own, if it did
        self.signals: list[int] = []
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._udp_fds: dict[int, socket.socket] = {}
        self._main_fds: frozenset[int] = frozenset()  # the sockets bound to the port, not the peer lanes
        # when to match the lanes to the endpoints next (None: no reason to); at once, for the configured peers
        self._lanes_due: float | None = 0.0
        self._lanes_synced = float("-inf")
        self._tun_file = io.FileIO(tun_fd, "r", closefd=False)
        self._rbuf = bytearray(MAX_DATAGRAM)
        self._rview = memoryview(self._rbuf)
        self._rbufs = [self._rbuf]  # recvmsg_into's list of buffers, made once
        self.gso = "gso" in offloads  # send runs of equal-size datagrams with one sendmsg (UDP_SEGMENT) until refused
        self.coalescing = "coalesce" in offloads  # write TCP runs to TUN as one super-segment until refused
        self._epoll.register(tun_fd, select.EPOLLIN)
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        self._alarm = Alarm.create()  # None: no timerfd, and the loop sleeps with epoll timeouts instead
        if self._alarm is not None:
            self._epoll.register(self._alarm.fd, select.EPOLLIN)
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
        self._main_fds = frozenset(s.fileno() for s in (self.udp.v4, self.udp.v6) if s is not None)
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

    def run(self, on_signal: Callable[[int], None]) -> None:
        """Until ``stop``: sleep until an fd is readable or a deadline is due (the core's next timer, the next
        lane matching), handle what woke the loop, then signals. Raises only what a programming error raises."""
        self.running = True
        poll = self._epoll.poll
        device = self.device
        next_deadline = device.next_deadline
        tun_fd = self.tun_fd
        wake_fd = self._wake_r.fileno()
        alarm = self._alarm
        alarm_fd = -1 if alarm is None else alarm.fd
        ready: set[int] = set()  # the fds the previous wake-up found readable
        check = True  # look at the timers and the lanes before the next sleep
        now = 0.0  # when they were last looked at
        timeout = -1.0
        while self.running:
            # After a wake-up whose packets all took the core's lone paths, the timers need no look if the alarm
            # rings within the core's lone_horizon of the last look: those paths arm nothing sooner than that
            # after their own (later) time and move nothing earlier, so the alarm still rings first.
            if check or alarm is None or alarm.armed is None or alarm.armed > now + device.lone_horizon:
                now = monotonic()
                due = next_deadline()
                if due is not None and now >= due:
                    self.perform(device.tick(now))
                    due = next_deadline()  # the timers just run are disarmed or re-armed later
                lanes_due = self._lanes_due
                if lanes_due is not None:
                    if now >= lanes_due:
                        self.sync_lanes(now)
                    elif due is None or lanes_due < due:
                        due = lanes_due
                if alarm is None:
                    # epoll rounds a timeout up to the next millisecond: the loop never wakes before the deadline
                    timeout = -1 if due is None else (due - now if due > now else 0)
                elif due is not None and (alarm.armed is None or due < alarm.armed):
                    # set again only if the deadline came earlier (or it rang): a deadline that moved later
                    # makes it ring early once, and the loop finds nothing due then
                    alarm.arm(due)
            events = poll(timeout)
            check = False
            previous, ready = ready, set()
            for fd, _ in events:
                ready.add(fd)
                if fd == tun_fd:
                    if not self.from_tun(fd in previous):
                        check = True
                elif fd in self._udp_fds:
                    if not self.from_udp(self._udp_fds[fd], fd in previous):
                        check = True
                    if fd in self._main_fds and self._lanes_due is None and self.udp.use_lanes:
                        # maybe from an endpoint with no lane yet (a new peer, a roam): match them, at most once
                        # every LANE_SYNC, so that a flood on the port cannot make it run more often
                        self._lanes_due = self._lanes_synced + LANE_SYNC
                        check = True
                else:
                    check = True  # the alarm, a wake-up, the UAPI: anything may have moved
                    if fd == alarm_fd:
                        alarm.rang()  # type: ignore[union-attr]
                    elif fd == wake_fd:
                        self._drain_wake()
                    else:
                        handler = self.handlers.get(fd)
                        if handler is not None:
                            handler()
            while self.signals:
                check = True
                on_signal(self.signals.pop(0))

    def lanes_changed(self) -> None:
        """A lane was closed under the loop (output.py ``_lane_failed``): unwatch it, match the lanes again soon."""
        self.watch_udp()
        if self._lanes_due is None:
            self._lanes_due = self._lanes_synced + LANE_SYNC

    def resync_lanes(self) -> None:
        """The peers' endpoints may have changed (configuration, a rebind): match the lanes at the next wake-up."""
        self._lanes_due = 0.0

    def sync_lanes(self, now: float) -> None:
        """A lane (a socket connected to it) per peer endpoint the core knows now, registered with epoll."""
        self._lanes_due = None
        self._lanes_synced = now
        endpoints = {(p.endpoint[0], p.endpoint[1]) for p in self.device.peers.values() if p.endpoint is not None}
        if self.udp.sync_lanes(endpoints):
            self.watch_udp()

    def stats(self) -> Counter[str]:
        """The loop's counters that are not zero (a Counter: a name never counted reads as 0)."""
        return Counter(self.counters.as_dict())

    def stop(self) -> None:
        """Make ``run`` return after this wake-up. Safe from another thread: it wakes a loop that sleeps with no
        deadline."""
        self.running = False
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the wake-up socket is full (the loop wakes anyway) or closed (the loop is gone)
            pass

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        if self._alarm is not None:
            self._alarm.close()
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

    def from_tun(self, burst: bool = True) -> bool:
        """Packets from TUN, sealed and sent. In a ``burst`` (the fd was readable at the previous wake-up too) up
        to BATCH are read and sealed in one call: runs for one peer leave as one GSO send. Otherwise one packet
        is read and takes the core's fast path; if more are queued, the next wake-up comes at once and is a
        burst.

        On an idle tunnel the caches are cold and every object and system call is dear (a lone ping's traversal
        cost about 150 µs of CPU here): a lone packet should neither pay for a read that finds the queue empty
        nor build the batch machinery.

        True when the packet took the core's lone path (``seal_one``), which arms no timer sooner than the core's
        ``lone_horizon`` (the loop need not look at the timers again); False when it may have done anything."""
        if burst:
            packets = self._read_tun(BATCH)
            if packets:
                self.perform(self.device.encapsulate_batch(packets, monotonic()))
            return False
        try:
            buf = self._tun_file.read(MAX_PACKET)  # None, rather than an exception, when nothing is queued
        except OSError as exc:
            self._tun_read_failed(exc)
            return False
        if buf is None:
            return False
        counters = self.counters
        if len(buf) <= VNET_HDR_LEN or buf[0] or buf[1] != GSO_NONE:  # an offload: cut, and a batch after all
            counters.tun_reads += 1
            packets = self._offloaded(buf)
            counters.tun_packets += len(packets)
            if packets:
                self.perform(self.device.encapsulate_batch(packets, monotonic()))
            return False
        # a copy rather than a view: a few dozen bytes, and no memoryview machinery to fault in on an idle tunnel
        packet = buf[VNET_HDR_LEN:]
        now = monotonic()
        fast = self.device.seal_one(packet, now)
        lane = None if fast is None else self.udp.lanes.get(fast[1])
        if lane is None:  # the general path, or a peer with no lane (a connected socket) yet: counted there
            counters.tun_reads += 1
            counters.tun_packets += 1
            if fast is None:
                self.perform(self.device.encapsulate_batch([packet], now))
                return False
            self._send_one(*fast)
            return True
        # sealed, and the peer's lane: _send_one, inline, and one count for the read and the send
        try:
            lane.send(fast[0])
        except (BlockingIOError, InterruptedError):
            counters.udp_send_dropped += 1
        except OSError as exc:  # counted as the general path counts it, and sent again without the lane
            counters.tun_reads += 1
            counters.tun_packets += 1
            self._lane_failed(fast[1], exc)
            self._send_one(*fast)
            return False  # the lanes are to be matched again
        counters.lone_sent += 1
        return True

    def _read_tun(self, limit: int) -> list:
        """At least ``limit`` packets from the TUN device, unless it runs dry first: plain reads as views past the
        virtio-net header, offloaded ones (a super-segment, an unfinished checksum) cut and finished by tso.py."""
        read = self._tun_file.read  # returns None, rather than raising, when nothing is queued
        packets: list = []
        reads = 0
        while len(packets) < limit:
            try:
                buf = read(MAX_PACKET)
            except OSError as exc:
                self._tun_read_failed(exc)
                break
            if buf is None:
                break
            reads += 1
            if len(buf) > VNET_HDR_LEN and buf[0] == 0 and buf[1] == GSO_NONE:  # no offload: the common case
                packets.append(memoryview(buf)[VNET_HDR_LEN:])
                continue
            packets += self._offloaded(buf)
        if reads:
            self.counters.tun_reads += reads
            self.counters.tun_packets += len(packets)
        return packets

    def _offloaded(self, buf: bytes) -> list:
        """The packets of a read that carries an offload (a super-segment, an unfinished checksum), cut and
        finished by tso.py; none (counted) when it makes no sense."""
        try:
            parts = segment(buf)
        except SegmentError as exc:
            self.counters.tun_drop_bad_offload += 1
            log.debug("dropped a TUN read: %s", exc)
            return []
        self.counters.tun_super_segments += 1
        return parts

    def _tun_read_failed(self, exc: OSError) -> None:
        self.counters.tun_read_error += 1
        if exc.errno in (errno.EBADFD, errno.EIO, errno.ENODEV, errno.ENXIO):
            # the interface was deleted under us: nothing will ever come again, stop (and be restarted)
            self.failure = f"the TUN interface is gone ({exc.strerror})"
            self.running = False
        elif self.counters.tun_read_error == 1:
            log.warning("reading the TUN device failed: %s (counted as tun_read_error)", exc.strerror)

    def from_udp(self, sock: socket.socket, burst: bool = True) -> bool:
        """Datagrams (GRO-coalesced) received, decrypted and their packets written to TUN, TCP runs coalesced.

        As in ``from_tun``: in a burst up to BATCH reads are handled together; otherwise one read, and a lone
        transport message takes the core's fast path and is written straight away. True when it took the core's
        lone path (``open_one``), as in ``from_tun``."""
        if burst:
            self._receive(sock, BATCH)
            return False
        try:
            # bytes rather than a view of the receive buffer: no memoryview machinery on an idle tunnel
            whole, ancdata, _, addr = sock.recvmsg(MAX_DATAGRAM, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._receive_failed(exc)
            return False
        counters = self.counters
        size = len(whole)
        src = addr if len(addr) == 2 else (addr[0], addr[1])
        now = monotonic()
        if ancdata:  # GRO: maybe several datagrams in one read, a batch after all
            segment = _gro_segment(ancdata, size)
            if segment < size:
                datagrams = [whole[i:i + segment] for i in range(0, size, segment)]
                counters.udp_reads += 1
                counters.udp_datagrams_read += len(datagrams)
                self.perform(self.device.decapsulate_batch(datagrams, src, now))
                return False
        packet = self.device.open_one(whole, src, now)
        if not packet:  # the general path (None), or nothing to write (a keepalive, a drop: counted by the core)
            counters.udp_reads += 1
            counters.udp_datagrams_read += 1
            if packet is None:
                self.perform(self.device.decapsulate_batch([whole], src, now))
                return False
        else:
            # _write_packet, inline, and one buffer rather than writev's list: a few dozen bytes copied; one count
            # for the read and the write
            counters.lone_written += 1
            try:
                os.write(self.tun_fd, PLAIN + packet)
            except OSError as exc:
                counters.tun_write_error += 1
                log.debug("TUN write failed: %s", exc.strerror)
        return True

    def _receive(self, sock: socket.socket, reads: int) -> None:
        """Up to ``reads`` receives, then their actions performed."""
        recvmsg_into = sock.recvmsg_into
        device = self.device
        counters = self.counters
        bufs, view = self._rbufs, self._rview
        now = monotonic()
        actions: list[Action] = []
        done = 0
        while done < reads:
            try:
                size, ancdata, _, addr = recvmsg_into(bufs, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._receive_failed(exc)
                continue
            done += 1
            segment = _gro_segment(ancdata, size) if ancdata else size
            # views of the buffer, not copies: the core keeps no reference once it returns
            whole = view[:size]  # slices of it end at the data, not at the buffer's end
            src = (addr[0], addr[1])
            if segment >= size:
                counters.udp_datagrams_read += 1
                actions += device.decapsulate_batch([whole], src, now)
            else:
                datagrams = [whole[i:i + segment] for i in range(0, size, segment)]
                counters.udp_datagrams_read += len(datagrams)
                actions += device.decapsulate_batch(datagrams, src, now)
        if done:
            counters.udp_reads += done
        if actions:
            self.perform(actions)

    def _receive_failed(self, exc: OSError) -> None:
        """A receive error, e.g. ECONNREFUSED reported for an earlier send: counted, and the loop goes on."""
        self.counters.udp_recv_error += 1
        log.debug("udp receive error: %s", exc.strerror)
