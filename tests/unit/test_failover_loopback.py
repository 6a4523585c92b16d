"""Four gateways' failover loops on loopback addresses, with real sockets and threads and a fake AWS: the active
records and announces, a dead agent (its port closed: the kernel answers) causes no takeover, a silent one does,
and the remote site moves its peers to the new active. No root, no namespaces: every datagram arrives on the
tunnel socket here (there is no TUN device to bind to), which the shell treats as it treats the VPC one."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from linker.contract import Membership
from linker.gateway.actives import MoveSiteCidrs
from linker.gateway.failover_io import AgentSockets, FailoverLoop, open_socket
from linker.gateway.failover_shell import FailoverShell
from linker.gateway.ha_membership import ha_view
from tests.unit.test_failover_shell import FakeCloud

LINK, X, Y = "prod", "us-east-1", "eu-west-1"
A, B, C, D = "i-0aaa", "i-0bbb", "i-0ccc", "i-0ddd"
ADDR = {A: "127.0.0.11", B: "127.0.0.12", C: "127.0.0.21", D: "127.0.0.22"}


def free_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return int(port)


def membership() -> Membership:
    def site(name: str, gws: list[str], cidr: str) -> dict:
        return {"site": name, "region": name, "eip": "198.51.100.1", "cidrs": [cidr], "port": 51820, "ha": True,
                "gateways": [[g, f"{name}a", "198.51.100.2", ADDR[g]] for g in gws]}
    return Membership.from_json(json.dumps({"schema": 1, "link": LINK, "sites": [
        site(X, [A, B], "10.1.0.0/16"), site(Y, [C, D], "10.2.0.0/16")]}))


def wait_for(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_four_gateways_on_loopback() -> None:
    port = free_port()
    clouds = {X: FakeCloud(A), Y: FakeCloud(C)}
    events: dict[str, list[object]] = {i: [] for i in ADDR}
    loops: dict[str, FailoverLoop] = {}
    for instance, site in ((A, X), (B, X), (C, Y), (D, Y)):
        view = ha_view(membership(), site, instance)
        assert view is not None

        def make(send, submit, view=view, instance=instance, site=site) -> FailoverShell:  # type: ignore[no-untyped-def]
            return FailoverShell(view, clouds[site], send, submit, events[instance].append, first_nonce=7)

        def opener(address: str = ADDR[instance]) -> AgentSockets:
            return AgentSockets(open_socket(address, port, None), open_socket(address, 0, None), port, "lo")

        loops[instance] = FailoverLoop(make, opener)
    dumb: socket.socket | None = None
    try:
        for loop in loops.values():
            loop.start()
        remote_moved = lambda instance, epoch: all(  # noqa: E731
            MoveSiteCidrs(X, instance, epoch) in events[g] for g in (C, D))
        assert wait_for(lambda: remote_moved(A, 1), 5.0)  # A is the route target: recorded and announced
        assert loops[A].shell.role == "active" and loops[B].shell.role == "standby"

        loops[A].stop()  # A's agent dies; its host's kernel answers probes with port unreachable
        time.sleep(4.5)
        assert clouds[X].tables == {"rtb-1": A, "rtb-2": A} and loops[B].shell.failovers == 0

        dumb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # now A swallows probes: its data plane is silent
        dumb.bind((ADDR[A], port))
        assert wait_for(lambda: remote_moved(B, 2), 10.0)
        assert clouds[X].tables == {"rtb-1": B, "rtb-2": B} and loops[B].shell.role == "active"
        last = loops[B].shell.last_failover
        assert last is not None and last.previous == A
    finally:
        for loop in loops.values():
            loop.stop()
        if dumb is not None:
            dumb.close()
    assert threading.active_count() < 20
