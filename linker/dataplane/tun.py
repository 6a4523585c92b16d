"""The TUN device: /dev/net/tun with IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, its addresses, MTU and routes (pyroute2).

``TunDevice.create`` opens the device and brings it up; ``close`` removes it (and with it every route through it).
``RouteSync`` keeps one kernel route per AllowedIPs network pointed at the device, adding and removing routes as
peers change, so traffic for a peer added live (``wg set``, SIGHUP, the gateway agent) flows at once. It only ever
removes routes it added itself. Not thread-safe: the daemon's loop owns both.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import os
import struct
from collections.abc import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from linker.dataplane.tso import TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO4, TUN_F_USO6
from linker.errors import PrivilegeError, UserError
from linker.wg.allowedips import Network

log = logging.getLogger("linker.daemon")

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000  # every read and write carries a virtio_net_hdr (see offload.py)
# Packets the kernel may queue for us to read: the tunnel's only send-side queue. A TUN device never stops its
# queue (its ring drops when full), so a qdisc in front of it never holds a packet: fq_codel or cake there would
# manage nothing (measured: a pfifo's backlog stays 0 while the ring drops). The ring's length is the knob: at
# 4,096 packets a bulk flow kept up to 4 MiB (TCP small queues' limit) standing in it, and pings beside it waited
# 36-40 ms at the 99th percentile; at 128 (about 180 KB, 1.5 ms at 1 Gbit/s) they wait about 10 ms, the bulk flow
# losing some throughput to retransmissions (bench/tunnels.py, README "Performance").
TX_QUEUE_LEN = 128
RTPROT_LINKER = 0x4C  # the routes' protocol number ('L'): ours, so `ip route show proto 76` lists them


class TunError(UserError):
    """The device cannot be made (name in use, no /dev/net/tun, ...): the operator's to fix (exit 2)."""

    kind = "tun_error"


class TunDevice:
    def __init__(self, fd: int, name: str, index: int, ipr: IPRoute) -> None:
        self.fd = fd
        self.name = name
        self.index = index
        self._ipr = ipr

    @classmethod
    def create(cls, name: str, mtu: int, addresses: Iterable[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
               offload: bool = False) -> TunDevice:
        """Open (or create) the interface ``name`` and bring it up. ``offload``: ask the kernel for TCP and UDP
        super-segments and unfinished checksums on reads (tso.py cuts and finishes them). Raises TunError or
        PrivilegeError, leaving nothing behind."""
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TunError("/dev/net/tun does not exist", "load the tun module (modprobe tun)") from None
        except PermissionError:
            raise PrivilegeError("opening /dev/net/tun needs root (or CAP_NET_ADMIN)",
                                 "run the daemon as root") from None
        try:
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR))
        except OSError as exc:
            os.close(fd)
            if exc.errno == errno.EBUSY:
                raise TunError(f"interface {name} already exists and is in use",
                               f"stop what runs {name}, or pick another name with --interface") from None
            if exc.errno == errno.EPERM:
                raise PrivilegeError(f"creating interface {name} needs root (or CAP_NET_ADMIN)",
                                     "run the daemon as root") from None
            if exc.errno == errno.EINVAL:
                raise TunError(f"interface {name} exists and is not a TUN device linker can attach to",
                               f"remove it (ip link del {name}) or pick another name with --interface") from None
            raise TunError(f"cannot create TUN interface {name}: {exc.strerror}") from None
        if offload:
            enable_offloads(fd, name)
        ipr = IPRoute()
        try:
            index = ipr.link_lookup(ifname=name)[0]
            ipr.link("set", index=index, mtu=mtu, txqlen=TX_QUEUE_LEN)
            for addr in addresses:
                try:
                    ipr.addr("add", index=index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise
            ipr.link("set", index=index, state="up")
        except NetlinkError as exc:
            ipr.close()
            os.close(fd)
            raise TunError(f"cannot configure interface {name}: {os.strerror(exc.code)}") from None
        log.info("interface up, mtu %d", mtu, extra={"iface": name})
        return cls(fd, name, index, ipr)

    def set_mtu(self, mtu: int) -> None:
        self._ipr.link("set", index=self.index, mtu=mtu)

    def close(self) -> None:
        """Remove the device: closing a non-persistent TUN's last fd deletes the interface and its routes."""
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        self._ipr.close()
        log.info("interface removed", extra={"iface": self.name})

    @property
    def ipr(self) -> IPRoute:
        return self._ipr


def enable_offloads(fd: int, name: str) -> int:
    """TUNSETOFFLOAD with checksum, TSO4/6 and, where the kernel has it (6.2 on), USO4/6; returns the flags set.

    A kernel that refuses USO gets TCP only, one that refuses everything gets none: reads are then plain packets,
    as without offloads, and nothing else changes."""
    tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
    for flags in (tcp | TUN_F_USO4 | TUN_F_USO6, tcp):
        try:
            fcntl.ioctl(fd, TUNSETOFFLOAD, flags)
        except OSError:
            continue
        log.debug("TUN offloads 0x%x", flags, extra={"iface": name})
        return flags
    log.info("the kernel offers no TUN offloads: one packet per read", extra={"iface": name})
    return 0


class RouteSync:
    """Keeps a route ``<net> dev <tun>`` for each network of the peers' AllowedIPs.

    Default routes (/0) are skipped with a warning: pointing the default route at the tunnel would also capture
    the tunnel's own UDP packets. Routes that would collide with one that exists are logged and left alone.
    """

    def __init__(self, tun: TunDevice, enabled: bool = True) -> None:
        self.tun = tun
        self.enabled = enabled
        self.installed: set[Network] = set()

    def sync(self, wanted: Iterable[Network]) -> None:
        if not self.enabled:
            return
        want = set()
        for net in wanted:
            if net.prefixlen == 0:
                if net not in self.installed:
                    log.warning("not routing %s through the tunnel (it would capture the tunnel itself); route it "
                                "yourself with Table = off", net, extra={"iface": self.tun.name})
                continue
            want.add(net)
        for net in sorted(self.installed - want, key=str):
            self._route("del", net)
            self.installed.discard(net)
        for net in sorted(want - self.installed, key=str):
            if self._route("add", net):
                self.installed.add(net)

    def _route(self, op: str, net: Network) -> bool:
        try:
            self.tun.ipr.route(op, dst=str(net), oif=self.tun.index, proto=RTPROT_LINKER,
                               family=10 if net.version == 6 else 2)
            return True
        except NetlinkError as exc:
            if op == "del" and exc.code in (errno.ESRCH, errno.ENODEV):
                return True
            log.warning("cannot %s route %s: %s", op, net, os.strerror(exc.code), extra={"iface": self.tun.name})
            return False
