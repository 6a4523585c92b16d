"""The loop's counters: one plain integer attribute per event, in one slotted object.

Plain attributes rather than a ``Counter``: the lone-packet paths count on every packet of an idle tunnel, where a
dict update with cold caches cost 15-20 µs and an attribute increment costs next to nothing. Not thread-safe: the
loop owns them; the daemon reads ``as_dict`` between wake-ups (SIGUSR1, shutdown).
"""

from __future__ import annotations

NAMES = (
    "tun_reads",  # read calls on the TUN device that returned data
    "tun_packets",  # packets those reads carried (a super-segment counts each packet cut from it)
    "tun_super_segments",  # reads that carried an offload (a TCP/UDP super-segment or an unfinished checksum)
    "tun_drop_bad_offload",  # offloaded reads that made no sense (an unknown offload, bad headers): dropped
    "tun_read_error",
    "tun_packets_written",  # packets written to the TUN device (a super-segment counts each packet in it)
    "tun_writes",  # write calls (one per packet, or one per super-segment)
    "tun_write_error",
    "udp_reads",  # receive calls that returned data (one may carry many GRO-coalesced datagrams)
    "udp_datagrams_read",
    "udp_recv_error",
    "udp_datagrams_sent",
    "udp_sends",  # send calls (one per datagram, or one per GSO run)
    "udp_send_dropped",  # the socket buffer was full
    "udp_send_error",
    "udp_send_no_socket",  # no socket of the endpoint's address family
    "udp_lane_dropped",  # a peer lane's send failed (its source address gone, an ICMP error): closed, sent without
)
# A lone packet on the fast paths counts once, not four times: each of these stands for one of each of the
# counters it folds into (``as_dict`` adds them there and never shows them by name)
LONE = {
    "lone_sent": ("tun_reads", "tun_packets", "udp_datagrams_sent", "udp_sends"),  # one read, sealed, one send
    "lone_written": ("udp_reads", "udp_datagrams_read", "tun_writes", "tun_packets_written"),  # and back
}


class LoopCounters:
    """How many times each of NAMES happened since the loop started."""

    __slots__ = NAMES + tuple(LONE)

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        """The counters that are not zero, by name (the lone ones folded into the counters they stand for)."""
        values = {name: getattr(self, name) for name in NAMES}
        for lone, names in LONE.items():
            count = getattr(self, lone)
            for name in names:
                values[name] += count
        return {name: value for name, value in values.items() if value}
