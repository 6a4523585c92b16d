"""What the protocol core asks its I/O loop to do. Returned as a list, all at once, in order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SendDatagram:
    """Send ``data`` as one UDP datagram to ``endpoint`` (host, port)."""

    data: bytes
    endpoint: tuple


@dataclass(frozen=True, slots=True)
class WriteTun:
    """Write one complete IP packet to the TUN device."""

    packet: bytes


@dataclass(frozen=True, slots=True)
class SendDatagrams:
    """Send each of ``datagrams``, in order, as its own UDP datagram to ``endpoint`` (the batch paths' form:
    the I/O loop may hand them to the kernel in one call, e.g. with UDP GSO)."""

    datagrams: list[bytes]
    endpoint: tuple


@dataclass(frozen=True, slots=True)
class WritePackets:
    """Write each of ``packets``, in order, to the TUN device (the batch paths' form: the loop may coalesce)."""

    packets: list[bytes]


Action = SendDatagram | WriteTun | SendDatagrams | WritePackets


def flatten(actions: list[Action]) -> list[SendDatagram | WriteTun]:
    """The batch forms spelled out one datagram or packet per action, as ``bytes`` (the batch forms may carry views
    of a buffer shared by their batch: the one-packet API hands out values that stand alone)."""
    out: list[SendDatagram | WriteTun] = []
    for a in actions:
        if type(a) is SendDatagrams:
            out += [SendDatagram(bytes(d), a.endpoint) for d in a.datagrams]
        elif type(a) is WritePackets:
            out += [WriteTun(bytes(p)) for p in a.packets]
        else:
            out.append(a)  # type: ignore[arg-type]
    return out
