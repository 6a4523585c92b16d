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


Action = SendDatagram | WriteTun
