"""The loop's fallbacks, without root: a kernel that refuses super-segments or GSO sends gets every packet once."""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time

import pytest

from linker.dataplane import output as outputmod
from linker.dataplane.alarm import Alarm
from linker.dataplane.loop import Loop
from linker.dataplane.offload import PLAIN
from linker.dataplane.udp import UdpSockets
from linker.wg.actions import flatten
from linker.wg.device import Device
from linker.wg.keys import generate_private_key
from tests.pair.harness import EP_A, Pair, ipv4_packet
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

    monkeypatch.setattr(outputmod.os, "writev", writev)
    flow1 = stream("10.1.0.1", "10.2.0.1", 5, sport=1000)
    other = udp_packet("10.1.0.1", "10.2.0.1", b"x")
    flow2 = stream("10.1.0.1", "10.2.0.1", 5, sport=2000)
    loop._write([*flow1, other, *flow2])
    assert written == [*flow1, other, *flow2]
    assert not loop.coalescing
    loop._write(flow1)
    assert written[-5:] == flow1
    stats = loop.stats()
    assert stats["tun_packets_written"] == len(written) == 16 and "tun_write_error" not in stats


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

    monkeypatch.setattr(socket.socket, "sendmsg", sendmsg, raising=False)
    datagrams = [bytes([i]) * 100 for i in range(5)]
    loop._send(datagrams, rx.getsockname())
    got = [rx.recv(2048) for _ in range(5)]
    rx.close()
    assert calls == [5] and got == datagrams and not loop.gso
    stats = loop.stats()  # the refused GSO send is no send: five single ones
    assert (stats["udp_datagrams_sent"], stats["udp_sends"]) == (5, 5) and "udp_send_error" not in stats


@pytest.fixture
def linked():  # type: ignore[no-untyped-def]
    """Device a of a Pair with a session up, in a Loop whose "TUN" is a SOCK_SEQPACKET pair (one read, one packet)
    and whose peer's endpoint is a socket on loopback: nothing leaves the host."""
    pair = Pair(seed=9)
    pair.clock.now = time.monotonic()  # the loop reads the real monotonic clock: the session must be fresh on it
    pair.send("a")
    assert pair.peer("a").current is not None
    peer_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_sock.bind(("127.0.0.1", 0))
    peer_sock.settimeout(2)
    pair.peer("a").endpoint = peer_sock.getsockname()
    app, tun = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    tun.setblocking(False)
    app.settimeout(2)
    udp = UdpSockets(0)
    lp = Loop(pair.a, tun.fileno(), udp)
    yield pair, lp, app, peer_sock
    lp.close()
    udp.close()
    for s in (app, tun, peer_sock):
        s.close()


def spy(obj: object, name: str, calls: list) -> None:
    real = getattr(obj, name)

    def wrapper(*args):  # type: ignore[no-untyped-def]
        calls.append((name, args))
        return real(*args)

    setattr(obj, name, wrapper)


def test_a_lone_packet_takes_the_fast_path_and_a_burst_is_read_and_sealed_in_one_batch(linked) -> None:  # type: ignore[no-untyped-def]
    pair, lp, app, peer_sock = linked
    packets = [ipv4_packet("10.1.0.1", "10.2.0.1", b"n%d" % i) for i in range(5)]
    for p in packets:
        app.send(PLAIN + p)
    calls: list = []
    spy(pair.a, "seal_one", calls)
    spy(pair.a, "encapsulate_batch", calls)
    lp.from_tun(burst=False)  # a wake-up after a quiet spell: one read, no read that finds the queue empty
    assert [name for name, _ in calls] == ["seal_one"]
    lp.from_tun(burst=True)  # readable again at once: the rest in one batch
    assert [name for name, _ in calls] == ["seal_one", "encapsulate_batch"] and len(calls[1][1][0]) == 4
    received = [peer_sock.recv(2048) for _ in range(5)]
    got = []
    for datagram in received:
        got += [a.packet for a in flatten(pair.b.decapsulate(datagram, EP_A, pair.clock.now))]
    assert got == packets  # in order, each once
    stats = lp.stats()  # the lone read counted with the burst in one LoopCounters
    assert (stats["tun_reads"], stats["udp_datagrams_sent"]) == (5, 5) and stats["udp_sends"] >= 2


def test_a_lone_transport_message_is_opened_on_the_fast_path_and_written_at_once(linked) -> None:  # type: ignore[no-untyped-def]
    pair, _, _, _ = linked
    # the other direction: b's loop receives what a seals
    app, tun = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    tun.setblocking(False)
    app.settimeout(2)
    udp = UdpSockets(0)
    lp = Loop(pair.b, tun.fileno(), udp)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packets = [ipv4_packet("10.1.0.1", "10.2.0.1", b"m%d" % i) for i in range(3)]
        for p in packets:
            sealed = pair.a.seal_one(p, pair.clock.now)
            assert sealed is not None
            sender.sendto(sealed[0], ("127.0.0.1", udp.port))
        calls: list = []
        spy(pair.b, "open_one", calls)
        spy(pair.b, "decapsulate_batch", calls)
        sock = udp.v4
        assert sock is not None
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not select.select([sock], [], [], 0.1)[0]:
            pass
        lp.from_udp(sock, burst=False)
        assert [name for name, _ in calls] == ["open_one"]
        assert app.recv(2048) == PLAIN + packets[0]
        time.sleep(0.05)  # the other two are queued (GRO may merge them into one read)
        lp.from_udp(sock, burst=True)
        assert "open_one" not in [name for name, _ in calls[1:]]
        assert [app.recv(2048) for _ in range(2)] == [PLAIN + p for p in packets[1:]]
        assert pair.peer("b").endpoint == ("127.0.0.1", sender.getsockname()[1])  # roamed to the authenticated source
        stats = lp.stats()
        assert (stats["udp_datagrams_read"], stats["tun_packets_written"]) == (3, 3) and stats["udp_reads"] >= 2
    finally:
        lp.close()
        udp.close()
        for s in (app, tun, sender):
            s.close()


def test_an_idle_loop_sleeps_until_the_cores_next_deadline(linked) -> None:  # type: ignore[no-untyped-def]
    """No 10 Hz tick: in 0.8 s of idle the loop ticks once, when the keepalive timer is due, and sends it then."""
    pair, lp, _, peer_sock = linked
    due = time.monotonic() + 0.3
    pair.peer("a").t_send_keepalive = due
    assert pair.a.next_deadline() == due
    calls: list = []
    spy(pair.a, "tick", calls)
    runner = threading.Thread(target=lp.run, args=(lambda signum: None,))
    runner.start()
    try:
        keepalive = peer_sock.recv(2048)
        sent_at = time.monotonic()
        time.sleep(0.5)
    finally:
        lp.stop()
        runner.join(timeout=5)
    assert not runner.is_alive()
    assert len(keepalive) == 32 and due <= sent_at < due + 0.2
    assert len(calls) == 1 and calls[0][1][0] >= due  # woken once, at the deadline, not before


def test_the_alarm_rings_at_the_time_it_was_last_set_for_and_not_before() -> None:
    alarm = Alarm.create()
    assert alarm is not None  # Linux has timerfd
    try:
        assert not select.select([alarm.fd], [], [], 0)[0]  # never set: never rings
        start = time.monotonic()
        alarm.arm(start + 5)
        alarm.arm(start + 0.1)  # replaces the setting, earlier
        assert alarm.armed == start + 0.1
        assert select.select([alarm.fd], [], [], 2)[0]
        assert time.monotonic() >= start + 0.1
        alarm.rang()
        assert alarm.armed is None and not select.select([alarm.fd], [], [], 0)[0]  # read: quiet until set again
        alarm.rang()  # a second read finds nothing and is no error
        alarm.arm(start - 1)  # in the past: rings at once
        assert select.select([alarm.fd], [], [], 1)[0]
    finally:
        alarm.close()


def test_the_loop_sets_its_alarm_again_only_when_the_deadline_comes_earlier(linked) -> None:  # type: ignore[no-untyped-def]
    """Ten pings' worth of lone packets, out through TUN and back through the peer's lane, move the core's
    deadlines on every wake-up. The loop's alarm is set for the keepalive's deadline, rings there once (the
    traffic moved that deadline later: nothing is due) and is set once more, for the deadline the traffic left:
    two settings and no tick. The lone paths arm no timer within the core's lone_horizon, so the loop does not
    even look at the timers after them."""
    pair, lp, app, peer_sock = linked
    due = time.monotonic() + 0.4
    pair.peer("a").t_send_keepalive = due
    alarm = lp._alarm
    assert alarm is not None
    settings: list = []
    spy(alarm, "arm", settings)
    ticks: list = []
    spy(pair.a, "tick", ticks)
    looks: list = []
    spy(pair.a, "next_deadline", looks)
    runner = threading.Thread(target=lp.run, args=(lambda signum: None,))
    runner.start()
    try:
        received = []
        for i in range(10):
            app.send(PLAIN + ipv4_packet("10.1.0.1", "10.2.0.1", b"a%d" % i))
            received.append(peer_sock.recv(2048))
            reply = ipv4_packet("10.2.0.1", "10.1.0.1", b"b%d" % i)
            sealed = pair.b.seal_one(reply, pair.clock.now)
            assert sealed is not None
            peer_sock.sendto(sealed[0], ("127.0.0.1", lp.udp.port))
            assert app.recv(2048) == PLAIN + reply
            time.sleep(0.01)
        time.sleep(max(0.0, due + 0.2 - time.monotonic()))  # past the deadline that moved
    finally:
        lp.stop()
        runner.join(timeout=5)
    assert not runner.is_alive()
    assert all(len(d) > 32 for d in received)  # data, no keepalive
    assert lp.counters.lone_sent == 10 and lp.counters.lone_written == 10  # each on the lone paths
    left = pair.a.next_deadline()
    assert left is not None and left > due + 5
    assert [args[0] for _, args in settings] == [due, left]
    assert not ticks
    # the timers looked at when the loop starts, when the alarm rings and when it is stopped; not per packet
    assert len(looks) <= 4


def test_lone_packets_on_a_lane_count_once_each_way_and_show_as_the_counters_they_stand_for(linked) -> None:  # type: ignore[no-untyped-def]
    """A lone packet sealed and sent on the peer's lane (its connected socket) counts as one read and one send,
    and a lone transport message opened and written counts as one receive and one write, as on the general path."""
    pair, lp, app, peer_sock = linked
    lp.sync_lanes(time.monotonic())
    endpoint = pair.peer("a").endpoint
    assert endpoint in lp.udp.lanes  # a lane to the peer's endpoint
    packets = [ipv4_packet("10.1.0.1", "10.2.0.1", b"l%d" % i) for i in range(3)]
    for p in packets:
        app.send(PLAIN + p)
        lp.from_tun(burst=False)
    got = []
    for _ in packets:
        datagram, source = peer_sock.recvfrom(2048)
        assert source == lp.udp.lanes[endpoint].getsockname()  # sent from the lane (the same port)
        got += [a.packet for a in flatten(pair.b.decapsulate(datagram, EP_A, pair.clock.now))]
    assert got == packets
    # and back: b's reply to the lane
    reply = ipv4_packet("10.2.0.1", "10.1.0.1", b"back")
    sealed = pair.b.seal_one(reply, pair.clock.now)
    assert sealed is not None
    peer_sock.sendto(sealed[0], lp.udp.lanes[endpoint].getsockname())
    lane = lp.udp.lanes[endpoint]
    assert select.select([lane], [], [], 2)[0]
    lp.from_udp(lane, burst=False)
    assert app.recv(2048) == PLAIN + reply
    assert (lp.counters.lone_sent, lp.counters.lone_written) == (3, 1)  # the fast paths, each counted once
    stats = lp.stats()
    assert "lone_sent" not in stats and "lone_written" not in stats
    assert (stats["tun_reads"], stats["tun_packets"], stats["udp_datagrams_sent"], stats["udp_sends"]) == (3, 3, 3, 3)
    assert (stats["udp_reads"], stats["udp_datagrams_read"], stats["tun_writes"], stats["tun_packets_written"]) == (
        1, 1, 1, 1)


class _LostSource:
    """A lane whose host lost the address it was connected from: every send fails (EINVAL)."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real

    def fileno(self) -> int:
        return self.real.fileno()

    def send(self, data: bytes) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    def sendmsg(self, *args: object) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    def close(self) -> None:
        self.real.close()


@pytest.mark.parametrize("path", ["lone", "batch"])
def test_a_lane_that_fails_is_dropped_its_datagrams_go_on_the_port_and_it_is_made_again(linked, path) -> None:  # type: ignore[no-untyped-def]
    """A connected socket keeps its source address; once that is gone its sends fail. Nothing is lost: the
    datagrams leave on the port's socket, the lane is closed and made afresh at the next matching. GSO stays on
    (EINVAL is not GSO's refusal here)."""
    pair, lp, app, peer_sock = linked
    lp.sync_lanes(time.monotonic())
    endpoint = pair.peer("a").endpoint
    lp.udp.lanes[endpoint] = _LostSource(lp.udp.lanes[endpoint])
    count = 1 if path == "lone" else 6
    packets = [ipv4_packet("10.1.0.1", "10.2.0.1", b"f%d" % i) for i in range(count)]
    for p in packets:
        app.send(PLAIN + p)
    lp.from_tun(burst=path == "batch")
    got = []
    for _ in packets:
        datagram, source = peer_sock.recvfrom(2048)
        assert source[1] == lp.udp.port  # the port's socket (a lane would show the same port: it is gone)
        got += [a.packet for a in flatten(pair.b.decapsulate(datagram, EP_A, pair.clock.now))]
    assert got == packets and endpoint not in lp.udp.lanes and lp.gso
    stats = lp.stats()
    assert stats["udp_lane_dropped"] == 1 and "udp_send_error" not in stats
    assert (stats["tun_packets"], stats["udp_datagrams_sent"]) == (count, count)
    assert lp._lanes_due is not None  # matched again soon (at most once per LANE_SYNC)
    lp.sync_lanes(time.monotonic())
    assert isinstance(lp.udp.lanes[endpoint], socket.socket)
