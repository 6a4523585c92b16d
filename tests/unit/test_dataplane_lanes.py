"""Peer lanes (udp.py): a socket per peer endpoint, connected, on the tunnel's port; on loopback only."""

from __future__ import annotations

import socket
import time

from linker.dataplane.udp import MAX_LANES, UdpSockets


def peer() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def received(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    out = []
    time.sleep(0.05)
    while True:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            return out


def test_a_known_endpoints_datagrams_arrive_on_its_lane_and_others_on_the_main_socket() -> None:
    udp = UdpSockets(0, gro=False)
    known, stranger = peer(), peer()
    try:
        assert udp.sync_lanes({known.getsockname()})
        assert not udp.sync_lanes({known.getsockname()}), "nothing to change the second time"
        lane = udp.lanes[known.getsockname()]
        for _ in range(3):
            known.sendto(b"peer", ("127.0.0.1", udp.port))
            stranger.sendto(b"flood", ("127.0.0.1", udp.port))
        assert received(lane) == [b"peer"] * 3
        assert udp.v4 is not None and received(udp.v4) == [b"flood"] * 3
        assert lane in udp.sockets
    finally:
        udp.close()
        known.close()
        stranger.close()


def test_lanes_follow_the_endpoints_and_a_rebind() -> None:
    udp = UdpSockets(0, gro=False)
    peers = [peer() for _ in range(3)]
    try:
        udp.sync_lanes({p.getsockname() for p in peers})
        assert set(udp.lanes) == {p.getsockname() for p in peers}
        assert udp.sync_lanes({peers[0].getsockname()}) and set(udp.lanes) == {peers[0].getsockname()}
        udp.bind(0)
        assert udp.lanes == {}, "a rebind drops the lanes; the next sync makes them on the new port"
        udp.sync_lanes({peers[0].getsockname()})
        assert udp.lanes[peers[0].getsockname()].getsockname()[1] == udp.port
    finally:
        udp.close()
        for p in peers:
            p.close()


def test_lanes_are_bounded_and_can_be_turned_off() -> None:
    udp = UdpSockets(0, gro=False)
    many = {("127.0.0.1", 20000 + i) for i in range(MAX_LANES + 10)}
    try:
        udp.sync_lanes(many)
        assert len(udp.lanes) == MAX_LANES
    finally:
        udp.close()
    off = UdpSockets(0, gro=False, lanes=False)
    try:
        assert not off.sync_lanes({("127.0.0.1", 9)}) and off.lanes == {}
    finally:
        off.close()


def test_a_second_daemon_cannot_share_the_port() -> None:
    """SO_REUSEPORT is for this daemon's own lanes: another UdpSockets (another daemon) on the port is refused."""
    from linker.dataplane.udp import PortInUseError

    first = UdpSockets(0, gro=False)
    try:
        try:
            second = UdpSockets(first.port, gro=False)
        except PortInUseError as err:
            assert str(first.port) in err.message
        else:
            second.close()
            raise AssertionError("a second daemon bound the same port")
    finally:
        first.close()
