"""The daemon loop's output side: the actions the protocol core returns, performed with as few system calls as the
kernel allows. Sealed datagrams for one endpoint leave in one ``sendmsg`` with UDP GSO, decrypted TCP segments of
one flow are written to the TUN device as one super-segment (offload.py); each falls back to one call per packet,
for good, if the kernel refuses it. ``_send_one`` and ``_write_packet`` are a lone packet's send and write, and
what the batch paths use for anything they do not batch.

``Output`` is a part of ``Loop`` (loop.py) and holds no state of its own: it reads and changes the loop's counters,
sockets and offload switches. Not thread-safe: the loop's thread only.
"""

from __future__ import annotations

import errno
import logging
import os
import struct

from linker.dataplane.counters import LoopCounters
from linker.dataplane.offload import PLAIN, SuperSegment, coalesce
from linker.dataplane.udp import SOL_UDP, UDP_SEGMENT, UdpSockets
from linker.wg.actions import Action, SendDatagram, SendDatagrams, WritePackets

log = logging.getLogger("linker.daemon")

GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS of older kernels
GSO_MAX_BYTES = 65000  # one UDP send, before segmentation, stays under the 64 KiB datagram limit
_U16 = struct.Struct("=H")
_GSO_REFUSED = frozenset({errno.EIO, errno.EINVAL, errno.EMSGSIZE, errno.ENOPROTOOPT, errno.EOPNOTSUPP})


class Output:
    """Performs actions: sends what is to be sent, writes what is to be written."""

    # the loop's state that the output side uses (set by Loop.__init__)
    tun_fd: int
    udp: UdpSockets
    counters: LoopCounters
    gso: bool  # send runs of equal-size datagrams with one sendmsg (UDP_SEGMENT) until refused
    coalescing: bool  # write TCP runs to TUN as one super-segment until refused

    def perform(self, actions: list[Action]) -> None:
        """Send what is to be sent; write what is to be written, TCP runs coalesced into super-segments."""
        writes: list = []
        for action in actions:
            kind = type(action)
            if kind is SendDatagrams:
                self._send(action.datagrams, action.endpoint)  # type: ignore[union-attr]
            elif kind is WritePackets:
                writes += action.packets  # type: ignore[union-attr]
            elif kind is SendDatagram:
                self._send_one(action.data, action.endpoint)  # type: ignore[union-attr]
            else:
                writes.append(action.packet)  # type: ignore[union-attr]
        if writes:
            self._write(writes)

    # ------------------------------------------------------------------ to the TUN device

    def _write(self, packets: list) -> None:
        """Decrypted packets to TUN, in order. With coalescing, TCP runs go as super-segments; every other packet,
        and each packet of a super-segment the kernel refused, by ``_write_packet``."""
        if not self.coalescing or len(packets) == 1:
            for p in packets:
                self._write_packet(p)
            return
        counters = self.counters
        for parts in coalesce(packets):
            if type(parts) is not SuperSegment:
                self._write_packet(parts[1])  # [PLAIN, packet]
                continue
            try:
                os.writev(self.tun_fd, parts)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    if self.coalescing:
                        self.coalescing = False  # the kernel refused a super-segment: write plain from now on
                        log.warning("the TUN device refused a coalesced write; writing packets one by one")
                    for p in parts.packets:
                        self._write_packet(p)
                    continue
                counters.tun_write_error += 1
                log.debug("TUN write failed: %s", exc.strerror)
            counters.tun_writes += 1
            counters.tun_packets_written += len(parts.packets)

    def _write_packet(self, packet: bytes) -> None:
        """One packet in one write, as it is: a lone packet's, and the batch's wherever coalescing does not apply."""
        counters = self.counters
        counters.tun_writes += 1
        counters.tun_packets_written += 1
        try:
            os.writev(self.tun_fd, [PLAIN, packet])
        except OSError as exc:
            counters.tun_write_error += 1
            log.debug("TUN write failed: %s", exc.strerror)

    # ------------------------------------------------------------------ to the network

    def _send_one(self, datagram: bytes, endpoint: tuple) -> None:
        """One datagram in one send: a lone packet's, and the batch's wherever GSO does not apply. On the peer's
        lane if it has one: a connected socket needs no address from us and no route lookup in the kernel."""
        counters = self.counters
        udp = self.udp
        lane = udp.lanes.get(endpoint)
        sock = lane if lane is not None else udp.v6 if ":" in endpoint[0] else udp.v4
        if sock is None:
            counters.udp_datagrams_sent += 1
            counters.udp_send_no_socket += 1
            return
        try:
            if lane is not None:
                lane.send(datagram)
            else:
                sock.sendto(datagram, endpoint)
        except (BlockingIOError, InterruptedError):
            counters.udp_send_dropped += 1
        except OSError as exc:
            if lane is not None:  # the lane is dropped and the datagram goes again (and is counted) on the port's
                self._lane_failed(endpoint, exc)
                self._send_one(datagram, endpoint)
                return
            counters.udp_send_error += 1
            log.debug("udp send to %s failed: %s", endpoint[0], exc.strerror)
        counters.udp_datagrams_sent += 1
        counters.udp_sends += 1

    def _lane_failed(self, endpoint: tuple, exc: OSError) -> None:
        """A send on the peer's lane failed, and not for a full buffer. A connected socket keeps the source address
        it was connected from, so once the host loses that address (a moved address, a new lease) every send
        fails (EINVAL); and it is told the ICMP errors that an unconnected socket never hears of (ECONNREFUSED,
        EHOSTUNREACH), each of which costs one send. The lane is closed (the port's socket sends and receives for
        its peer meanwhile) and made again, connected afresh, at the loop's next matching of the lanes. The
        caller sends the datagrams again without it."""
        self.counters.udp_lane_dropped += 1
        log.debug("lane to %s dropped: %s", endpoint[0], exc.strerror)
        lane = self.udp.lanes.pop(endpoint, None)
        if lane is not None:
            lane.close()
        self.lanes_changed()

    def lanes_changed(self) -> None:
        """A lane was dropped: the loop stops watching it and matches the lanes again soon (Loop)."""
        raise NotImplementedError

    def _send(self, datagrams: list[bytes], endpoint: tuple) -> None:
        """Datagrams for one endpoint, in order: runs of equal size (one shorter may end a run) in one GSO send
        each, the rest by ``_send_one``. If the kernel refuses GSO, GSO is off for good and the rest go one by
        one."""
        udp = self.udp
        lane = udp.lanes.get(endpoint)  # connected: sendmsg without an address, no route lookup per send
        sock = lane if lane is not None else udp.v6 if ":" in endpoint[0] else udp.v4
        address = () if lane is not None else (endpoint,)
        count = len(datagrams)
        if count == 1 or not self.gso or sock is None:
            for d in datagrams:
                self._send_one(d, endpoint)
            return
        counters = self.counters
        i = 0
        while i < count:
            size = len(datagrams[i])
            limit = min(count, i + min(GSO_MAX_SEGMENTS, GSO_MAX_BYTES // size))
            j = i + 1
            while j < limit and len(datagrams[j]) == size:
                j += 1
            if j < limit and len(datagrams[j]) < size:
                j += 1  # one shorter datagram may end a GSO send
            if j - i == 1:
                self._send_one(datagrams[i], endpoint)
                i = j
                continue
            try:
                sock.sendmsg(datagrams[i:j], [(SOL_UDP, UDP_SEGMENT, _U16.pack(size))], 0, *address)
            except (BlockingIOError, InterruptedError):
                counters.udp_send_dropped += j - i
            except OSError as exc:
                if lane is not None:  # not GSO's fault (EINVAL is also a lost source address): without the lane
                    self._lane_failed(endpoint, exc)
                    self._send(datagrams[i:], endpoint)
                    return
                if exc.errno in _GSO_REFUSED:
                    # e.g. the route's device cannot checksum for us, or a segment exceeds the path MTU
                    # (EMSGSIZE; a single send is fragmented by the kernel): one send per datagram
                    self.gso = False
                    log.warning("UDP GSO refused (%s); sending datagrams one by one", exc.strerror)
                    for d in datagrams[i:]:
                        self._send_one(d, endpoint)
                    return
                counters.udp_send_error += j - i
                log.debug("udp send to %s failed: %s", endpoint[0], exc.strerror)
            counters.udp_sends += 1
            counters.udp_datagrams_sent += j - i
            i = j
