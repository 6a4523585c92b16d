"""Two (and three) linker daemons in namespaces joined by veth underlays: traffic, `wg show`, signals, config errors.

The underlay is TEST-NET (192.0.2.0/24, 198.51.100.0/24); inside the tunnel each site is a 10.x.0.0/24 that
exists only in its namespace.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.daemons import Node, b64_to_hex, handshake_ns, peered_pair, third_site
from tests.netns.netlab import LINKER, Lab, genkey, ping, run, transfer, wait_for

pytestmark = pytest.mark.netns

MIB = 1 << 20


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Lab, Node, Node]]:
    """Daemon ``a`` (10.1.0.1/24, underlay 192.0.2.1) and daemon ``b`` (10.2.0.1/24, 192.0.2.2), peered."""
    with Lab("dp", tmp_path) as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        na, nb = peered_pair(lab, a, "192.0.2.1", b, "192.0.2.2", log_level="debug")
        yield lab, na, nb


@pytest.mark.slow
def test_ping_both_ways_and_64_mib_arrive_intact(pair: tuple[Lab, Node, Node]) -> None:
    lab, na, nb = pair
    started = time.time()
    assert ping(na.ns, nb.ip), na.log_text()
    assert ping(nb.ns, na.ip), nb.log_text()
    size = 64 * MIB
    sent, received, _ = transfer(lab, nb.ns, nb.ip, na.ns, size)
    assert sent == received, "the bytes that arrived differ from those sent"

    peer = na.dump()[nb.pub]
    assert peer.endpoint == nb.endpoint
    assert peer.allowed_ips == "10.2.0.0/24"
    assert started - 1 <= peer.latest_handshake <= time.time() + 1, peer
    assert peer.tx >= size and peer.rx > 0, peer  # a sent the 64 MiB (plus WireGuard's overhead)
    assert nb.dump()[na.pub].rx >= size
    assert "proto 76" in na.routes() and "10.2.0.0/24" in na.routes()


def test_sigterm_exits_0_and_removes_interface_and_socket(pair: tuple[Lab, Node, Node]) -> None:
    _, na, nb = pair
    assert ping(na.ns, nb.ip)
    assert na.socket.exists()
    assert na.stop(signal.SIGTERM) == 0, na.log_text()
    assert run(["ip", "link", "show", na.iface], na.ns, check=False).returncode != 0, "the interface is still there"
    assert not na.socket.exists(), "the UAPI socket is still there"
    assert "10.2.0.0/24" not in run(["ip", "route"], na.ns).stdout
    assert "Traceback" not in na.log_text()


def test_an_interface_deleted_under_the_daemon_stops_it_with_a_clear_error(pair: tuple[Lab, Node, Node]) -> None:
    _, na, _ = pair
    run(["ip", "link", "del", na.iface], na.ns)
    assert na.proc is not None
    assert na.proc.wait(10) == 2, "the daemon must stop (to be restarted), not spin on a dead device"
    log = na.log_text()
    assert f"interface {na.iface}: the TUN interface is gone" in log and "start the daemon again" in log
    assert log.count("tun_read_error") <= 2 and "Traceback" not in log
    assert not na.socket.exists()


def test_sigint_exits_0_and_removes_interface(pair: tuple[Lab, Node, Node]) -> None:
    _, _, nb = pair
    assert nb.stop(signal.SIGINT) == 0, nb.log_text()
    assert run(["ip", "link", "show", nb.iface], nb.ns, check=False).returncode != 0
    assert not nb.socket.exists()


@pytest.fixture
def trio(pair: tuple[Lab, Node, Node]) -> tuple[Lab, Node, Node, Node]:
    """``pair`` plus daemon ``c`` (10.3.0.1/24) behind a second underlay link of ``a`` (198.51.100.0/24).

    ``c`` already knows ``a``; ``a`` does not know ``c`` yet."""
    lab, na, nb = pair
    nc = third_site(lab, na, "c")
    nc.start()
    return lab, na, nb, nc


def test_sighup_adds_and_removes_peers_and_keeps_unchanged_sessions(trio: tuple[Lab, Node, Node, Node]) -> None:
    _, na, nb, nc = trio
    a_hex, b_hex, c_hex = b64_to_hex(na.pub), b64_to_hex(nb.pub), b64_to_hex(nc.pub)
    assert ping(na.ns, nb.ip)
    assert not ping(na.ns, nc.ip, count=1, timeout=1), "c is reachable before a knows it"
    # the session a-b as both sides see it: a handshake time to the nanosecond, fixed until the next handshake
    before = (handshake_ns(na.uapi(), b_hex), handshake_ns(nb.uapi(), a_hex))
    assert all(before)
    rx_before = int(na.uapi()[b_hex]["rx_bytes"])

    # add c, remove none
    na.peers.append(nc.as_peer("10.3.0.0/24"))
    na.write_config()
    na.hup()
    assert wait_for(lambda: c_hex in na.uapi(), timeout=5), na.log_text()
    assert ping(na.ns, nc.ip), na.log_text()
    assert ping(nc.ns, na.ip)
    assert ping(na.ns, nb.ip) and ping(nb.ns, na.ip)
    after = (handshake_ns(na.uapi(), b_hex), handshake_ns(nb.uapi(), a_hex))
    assert after == before, "the unchanged peer b was handshaken again: its session was dropped by the reload"
    assert int(na.uapi()[b_hex]["rx_bytes"]) > rx_before, "b's counters were reset"
    assert "10.3.0.0/24" in na.routes()

    # remove b: its peer, its route and its traffic go; c's session stays
    c_before = handshake_ns(na.uapi(), c_hex)
    na.peers = [p for p in na.peers if p.public != nb.pub]
    na.write_config()
    na.hup()
    assert wait_for(lambda: b_hex not in na.uapi(), timeout=5), na.log_text()
    assert nb.pub not in na.dump()
    assert "10.2.0.0/24" not in na.routes(), na.routes()
    assert not ping(na.ns, nb.ip, count=1, timeout=1)
    assert ping(na.ns, nc.ip)
    assert handshake_ns(na.uapi(), c_hex) == c_before


def test_sighup_with_a_broken_file_keeps_the_running_config(pair: tuple[Lab, Node, Node]) -> None:
    _, na, nb = pair
    assert ping(na.ns, nb.ip)
    na.conf.write_text(na.config_text() + "[Peer]\nPublicKey = not-a-key\n")
    na.hup()
    assert wait_for(lambda: "reload refused" in na.log_text(), timeout=5), na.log_text()
    assert na.proc is not None and na.proc.poll() is None
    assert nb.pub in na.dump()
    assert ping(na.ns, nb.ip)


BAD_CONFIGS = [
    pytest.param("AllowedIPs = 10.999.0.0/16", "is not a network", id="allowed-ips"),
    pytest.param("Endpoint = 192.0.2.2", "Endpoint", id="endpoint-without-port"),
    pytest.param("Colour = blue", "unknown key", id="unknown-key"),
    pytest.param("PersistentKeepalive = often", "must be a number", id="keepalive"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_CONFIGS)
def test_config_error_names_file_and_line_and_exits_2(tmp_path: Path, line: str, problem: str) -> None:
    with Lab("ce", tmp_path) as lab:
        ns = lab.host("a")
        node = Node.make(lab, ns, "a", "10.1.0.1/24", "192.0.2.1")
        text = node.config_text() + f"[Peer]\nPublicKey = {genkey()[1]}\n{line}\n"
        bad_line = text.splitlines().index(line) + 1
        node.conf.write_text(text)
        node.conf.chmod(0o600)
        res = run([*LINKER, "daemon", str(node.conf), "--interface", node.iface], ns, check=False)
        assert res.returncode == 2, res.stderr
        assert f"{node.conf}:{bad_line}" in res.stderr, res.stderr
        assert problem in res.stderr
        assert "Traceback" not in res.stderr + res.stdout
        assert node.priv not in res.stderr + res.stdout
        assert run(["ip", "link", "show", node.iface], ns, check=False).returncode != 0
        assert not node.socket.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_private_key_file_readable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    with Lab("km", tmp_path) as lab:
        ns = lab.host("a")
        node = Node.make(lab, ns, "a", "10.1.0.1/24", "192.0.2.1")
        node.write_config(mode=mode)
        res = run([*LINKER, "daemon", str(node.conf), "--interface", node.iface], ns, check=False)
        assert res.returncode == 2, res.stderr
        assert f"chmod 600 {node.conf}" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        assert node.priv not in res.stderr + res.stdout
        assert run(["ip", "link", "show", node.iface], ns, check=False).returncode != 0


def test_underlay_mtu_below_the_tunnels_datagrams_still_carries_tcp(tmp_path: Path) -> None:
    """Full-size tunnel packets (1420 B inside, 1480 B outside) over a 1280 B underlay: the kernel must fragment
    the UDP datagrams, as it does for wireguard-go. A batched (UDP GSO) send of them is refused with EMSGSIZE;
    the daemon must fall back to single sends rather than drop the batch (it did, and TCP stalled)."""
    with Lab("mt", tmp_path) as lab:
        a, b = lab.host("a"), lab.host("b")
        ia, ib = lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        run(["ip", "link", "set", ia, "mtu", "1280"], a)
        run(["ip", "link", "set", ib, "mtu", "1280"], b)
        na, nb = peered_pair(lab, a, "192.0.2.1", b, "192.0.2.2")
        assert ping(na.ns, nb.ip) and ping(nb.ns, na.ip)
        for src, dst in ((na, nb), (nb, na)):
            sent, received, _ = transfer(lab, dst.ns, dst.ip, src.ns, 8 * MIB, timeout=30)
            assert sent == received


def test_a_taken_port_or_interface_name_exits_2_and_leaves_the_running_daemon_alone(
        pair: tuple[Lab, Node, Node]) -> None:
    """Conflicts with what runs already are the operator's to fix (exit 2 with the fix), not a bug (exit 1)."""
    lab, na, nb = pair
    other = lab.host("c")
    cases = [  # (namespace, interface, port, what the error says)
        (na.ns, na.iface[:-1] + "z", na.port, "UDP port 51820 is already in use"),
        (na.ns, na.iface, na.port + 1, "already exists and is in use"),
        (other, na.iface, na.port, "another daemon answers"),
    ]
    for ns, iface, port, message in cases:
        second = Node.make(lab, ns, "z", "10.9.0.1/24", "192.0.2.9", port=port)
        second.write_config()
        res = run([*LINKER, "daemon", str(second.conf), "--interface", iface], ns, check=False)
        assert res.returncode == 2, (message, res.stderr)
        assert message in res.stderr and "fix:" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        assert na.proc is not None and na.proc.poll() is None, na.log_text()
        assert na.socket.exists(), "the second daemon removed the first one's UAPI socket"
        assert nb.pub in na.dump()
    assert ping(na.ns, nb.ip)


def test_wg_set_listen_port_to_a_taken_port_is_refused_and_the_daemon_runs_on(pair: tuple[Lab, Node, Node]) -> None:
    """`wg set IFACE listen-port P` with P taken: wg reports the failure, the daemon keeps its port and tunnel
    (it used to die on the PortInUseError that the UAPI handler did not expect)."""
    lab, na, nb = pair
    assert ping(na.ns, nb.ip)
    holder = lab.spawn(na.ns, [sys.executable, "-c", "import socket, time; s = socket.socket(socket.AF_INET, "
                                "socket.SOCK_DGRAM); s.bind(('0.0.0.0', 51999)); print('bound', flush=True); "
                                "time.sleep(30)"], log=lab.dir / "holder.log")
    assert wait_for(lambda: "bound" in (lab.dir / "holder.log").read_text(), timeout=10)
    res = run(["wg", "set", na.iface, "listen-port", "51999"], na.ns, check=False)
    assert res.returncode != 0
    lab.stop(holder)
    assert not wait_for(lambda: na.proc is not None and na.proc.poll() is not None, timeout=1), na.log_text()
    assert na.uapi()[""]["listen_port"] == str(na.port)
    assert ping(na.ns, nb.ip) and ping(nb.ns, na.ip)
    # and a free port is taken as before
    run(["wg", "set", na.iface, "listen-port", "51998"], na.ns)
    assert na.uapi()[""]["listen_port"] == "51998"
    assert ping(na.ns, nb.ip)


@pytest.mark.slow
def test_ipv6_underlay_carries_the_tunnel(tmp_path: Path) -> None:
    """Endpoints on an IPv6 underlay (documentation prefix 2001:db8::/32): the daemon's IPv6 socket, its batched
    sends and GRO receives over IPv6, and the bracketed endpoint in `wg show` and in the log."""
    with Lab("v6", tmp_path) as lab:
        a, b = lab.host("a"), lab.host("b")
        ia, ib = lab.link(a, None, b, None)
        run(["ip", "addr", "add", "2001:db8:1::1/64", "dev", ia, "nodad"], a)
        run(["ip", "addr", "add", "2001:db8:1::2/64", "dev", ib, "nodad"], b)
        na, nb = peered_pair(lab, a, "[2001:db8:1::1]", b, "[2001:db8:1::2]")
        assert ping(na.ns, nb.ip) and ping(nb.ns, na.ip)
        for src, dst in ((na, nb), (nb, na)):
            sent, received, _ = transfer(lab, dst.ns, dst.ip, src.ns, 16 * MIB)
            assert sent == received
        assert na.dump()[nb.pub].endpoint == "[2001:db8:1::2]:51820"
        assert nb.dump()[na.pub].endpoint == "[2001:db8:1::1]:51820"
        assert "endpoint=[2001:db8:1::2]:51820" in na.log_text().split("peer added", 1)[1].splitlines()[0]


def test_ipv6_inside_the_tunnel_routes_pings_and_coalesces(tmp_path: Path) -> None:
    """IPv6 addresses and AllowedIPs on the tunnel (unique-local, inside the namespaces only): the v6 route is kept,
    ping6 answers and TCP over v6 arrives intact through the v6 coalescing path (IPv4 underlay)."""
    with Lab("i6", tmp_path) as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        na = Node.make(lab, a, "a", "fd00:1::1/64", "192.0.2.1")
        nb = Node.make(lab, b, "b", "fd00:2::1/64", "192.0.2.2")
        na.peers = [nb.as_peer("fd00:2::/64")]
        nb.peers = [na.as_peer("fd00:1::/64")]
        na.start(log_level="info")
        nb.start(log_level="info")
        assert "fd00:2::/64 dev" in run(["ip", "-6", "route"], a).stdout
        assert ping(a, "fd00:2::1") and ping(b, "fd00:1::1")
        sent, received, _ = transfer(lab, b, "fd00:2::1", a, 16 * MIB)
        assert sent == received
        assert na.dump()[nb.pub].allowed_ips == "fd00:2::/64"
        c = nb.counters()
        assert c["tun_writes"] * 4 < c["tun_packets_written"], f"IPv6 TCP segments were not coalesced: {c}"
        assert "Traceback" not in na.log_text() + nb.log_text()


def test_tso_super_segments_are_cut_into_packets_whose_checksums_the_kernel_accepts(tmp_path: Path) -> None:
    """With tso added to LINKER_OFFLOADS the sender reads TCP super-segments from its TUN device and cuts them in
    Python; the receiver writes every packet as it came (no coalescing), so its kernel checks each TCP checksum:
    one wrong cut and the transfer stalls or differs."""
    with Lab("ts", tmp_path) as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        na, nb = peered_pair(lab, a, "192.0.2.1", b, "192.0.2.2", start=False)
        na.start(log_level="info", offloads="gso,gro,coalesce,tso")
        nb.start(log_level="info", offloads="gso,gro")
        assert ping(na.ns, nb.ip)
        sent, received, _ = transfer(lab, nb.ns, nb.ip, na.ns, 16 * MIB)
        assert sent == received
        ca, cb = na.counters(), nb.counters()
        assert ca["tun_super_segments"] > 0 and ca["tun_packets"] > 4 * ca["tun_reads"], ca
        assert ca.get("tun_drop_bad_offload", 0) == 0, ca
        assert cb["tun_writes"] == cb["tun_packets_written"], cb
        assert "Traceback" not in na.log_text() + nb.log_text()
