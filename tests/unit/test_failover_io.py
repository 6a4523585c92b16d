"""The failover sockets on loopback (no root, no namespaces): IP_RECVERR turns a closed port into ``Refused`` with
our datagram; the loop hands datagrams and refusals to the shell, ticks it, and retries opening its sockets."""

from __future__ import annotations

import errno
import socket
import struct
import threading
import time
from typing import Any

from linker.gateway.failover_io import (
    IP_RECVERR,
    SO_EE_ORIGIN_ICMP,
    AgentSockets,
    Datagram,
    FailoverLoop,
    Refused,
    open_socket,
    read_socket,
    refused_errno,
)
from linker.gateway.failover_shell import TUNNEL, VPC


def closed_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return int(port)


def wait_for(condition, timeout: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_the_extended_error_of_an_icmp_port_unreachable() -> None:
    icmp = struct.pack("=IBBBBII", errno.ECONNREFUSED, SO_EE_ORIGIN_ICMP, 3, 3, 0, 0, 0) + b"\0" * 16
    assert refused_errno([(socket.IPPROTO_IP, IP_RECVERR, icmp)]) == errno.ECONNREFUSED
    local = struct.pack("=IBBBBII", errno.EMSGSIZE, 1, 0, 0, 0, 1400, 0)  # SO_EE_ORIGIN_LOCAL: not an answer
    assert refused_errno([(socket.IPPROTO_IP, IP_RECVERR, local)]) is None
    assert refused_errno([(socket.IPPROTO_IP, IP_RECVERR, b"\0")]) is None
    assert refused_errno([]) is None


def test_a_closed_port_comes_back_as_refused_with_our_datagram_then_datagrams_are_read() -> None:
    sock = open_socket("127.0.0.1", 0, None)
    try:
        port = sock.getsockname()[1]
        sock.sendto(b"probe", ("127.0.0.1", closed_port()))
        found: list[Any] = []
        assert wait_for(lambda: bool(found.extend(read_socket(sock)) or found))
        assert found == [Refused(b"probe", "127.0.0.1")]
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.sendto(b"reply", ("127.0.0.1", port))
        other.close()
        time.sleep(0.05)
        assert read_socket(sock) == [Datagram(b"reply", "127.0.0.1")]
        assert read_socket(sock) == []
    finally:
        sock.close()


def test_the_loop_feeds_the_shell_and_retries_its_sockets() -> None:
    attempts: list[int] = []
    opened: list[AgentSockets] = []

    def opener() -> AgentSockets:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError(errno.ENODEV, "No such device")  # the daemon has not made the TUN device yet
        sockets = AgentSockets(open_socket("127.0.0.1", 0, None), open_socket("127.0.0.1", 0, None), 0, "lo")
        opened.append(sockets)
        return sockets

    events: list[tuple[str, str, bytes]] = []

    class Shell:
        def __init__(self, send, submit) -> None:  # type: ignore[no-untyped-def]
            self.send, self.submit, self.ticks = send, submit, 0

        def tick(self, now: float) -> None:
            self.ticks += 1

        def received(self, path: str, data: bytes, source: str, now: float) -> None:
            events.append(("received", path, data))

        def refused(self, path: str, payload: bytes, destination: str, now: float) -> None:
            events.append(("refused", path, payload))

    loop = FailoverLoop(lambda send, submit: Shell(send, submit), opener)  # type: ignore[arg-type, return-value]
    loop.start()
    try:
        assert wait_for(lambda: bool(opened), 4.0)
        tunnel, vpc = opened[0].sockets[TUNNEL], opened[0].sockets[VPC]
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.sendto(b"announce", tunnel.getsockname())
        sender.sendto(b"probe", vpc.getsockname())
        sender.close()
        assert wait_for(lambda: {("received", TUNNEL, b"announce"), ("received", VPC, b"probe")} <= set(events))
        opened[0].port = closed_port()
        loop.shell.send(VPC, "127.0.0.1", b"to a dead agent")  # type: ignore[attr-defined]
        assert wait_for(lambda: ("refused", VPC, b"to a dead agent") in events)
        ran = threading.Event()
        loop.shell.submit(ran.set)  # type: ignore[attr-defined]
        assert ran.wait(2)
        ticks = loop.shell.ticks  # type: ignore[attr-defined]
        assert wait_for(lambda: loop.shell.ticks >= ticks + 3)  # type: ignore[attr-defined]
    finally:
        loop.stop()
    assert len(attempts) >= 2
    assert opened[0].sockets[TUNNEL].fileno() == -1  # closed on stop


def test_a_pending_port_unreachable_does_not_eat_the_next_send() -> None:
    receiver = open_socket("127.0.0.1", 0, None)
    sockets = AgentSockets(open_socket("127.0.0.1", 0, None), open_socket("127.0.0.1", 0, None), closed_port(), "lo")
    try:
        sockets.send(VPC, "127.0.0.1", b"to a closed port")
        time.sleep(0.05)  # the port unreachable is now the socket's pending error
        sockets.port = receiver.getsockname()[1]
        sockets.send(VPC, "127.0.0.1", b"after")
        found: list[Any] = []
        assert wait_for(lambda: bool(found.extend(read_socket(receiver)) or found))
        assert found == [Datagram(b"after", "127.0.0.1")]
        assert read_socket(sockets.sockets[VPC]) == [Refused(b"to a closed port", "127.0.0.1")]
    finally:
        sockets.close()
        receiver.close()


def test_a_bug_in_the_shell_does_not_end_the_loop() -> None:
    class Shell:
        ticks = 0

        def tick(self, now: float) -> None:
            Shell.ticks += 1
            if Shell.ticks == 1:
                raise RuntimeError("a bug")

    def opener() -> AgentSockets:
        return AgentSockets(open_socket("127.0.0.1", 0, None), open_socket("127.0.0.1", 0, None), 0, "lo")

    loop = FailoverLoop(lambda send, submit: Shell(), opener)  # type: ignore[arg-type, return-value]
    loop.start()
    try:
        assert wait_for(lambda: Shell.ticks >= 3)
    finally:
        loop.stop()
