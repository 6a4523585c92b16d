"""The loop's fallbacks, without root: a kernel that refuses super-segments or GSO sends gets every packet once."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from linker.dataplane import loop as loopmod
from linker.dataplane.loop import Loop
from linker.dataplane.offload import PLAIN
from linker.dataplane.udp import UdpSockets
from linker.wg.device import Device
from linker.wg.keys import generate_private_key
from tests.unit.test_dataplane_offload import stream, udp_packet


@pytest.fixture
def loop():  # type: ignore[no-untyped-def]
    r, w = os.pipe()
    udp = UdpSockets(0)
    lp = Loop(Device(generate_private_key(os.urandom), rng=os.urandom, wallclock=lambda: 0.0), r, udp)
    yield lp
    lp.close()
    udp.close()
    os.close(r)
    os.close(w)


def test_a_refused_super_segment_is_written_packet_by_packet_once(loop: Loop, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    written: list[bytes] = []

    def writev(fd: int, parts: list) -> int:
        if len(parts) > 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        assert bytes(parts[0]) == PLAIN
        written.append(b"".join(bytes(p) for p in parts[1:]))
        return 0

    monkeypatch.setattr(loopmod.os, "writev", writev)
    flow1 = stream("10.1.0.1", "10.2.0.1", 5, sport=1000)
    other = udp_packet("10.1.0.1", "10.2.0.1", b"x")
    flow2 = stream("10.1.0.1", "10.2.0.1", 5, sport=2000)
    loop._write([*flow1, other, *flow2])
    assert written == [*flow1, other, *flow2]
    assert not loop.coalescing
    loop._write(flow1)
    assert written[-5:] == flow1


def test_a_refused_gso_send_is_sent_datagram_by_datagram(loop: Loop, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    real = socket.socket.sendmsg
    calls = []

    def sendmsg(self, buffers, ancdata=(), flags=0, address=None):  # type: ignore[no-untyped-def]
        calls.append(len(buffers))
        if ancdata:
            raise OSError(errno.EIO, "Input/output error")
        return real(self, buffers, ancdata, flags, address)

    monkeypatch.setattr(loopmod.socket.socket, "sendmsg", sendmsg, raising=False)
    datagrams = [bytes([i]) * 100 for i in range(5)]
    loop._send(datagrams, rx.getsockname())
    got = [rx.recv(2048) for _ in range(5)]
    rx.close()
    assert calls == [5] and got == datagrams and not loop.gso
