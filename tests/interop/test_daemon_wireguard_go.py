"""The linker daemon (TUN, loop, UAPI) against Debian's wireguard-go configured with Debian's `wg`.

Each side initiates in turn; `wg show`, `wg set` and `wg syncconf` from wireguard-tools drive linker's device
through its UAPI socket exactly as they drive wireguard-go's. Underlay TEST-NET, tunnel 10.x in namespaces only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netns.daemons import Node, b64_to_hex, handshake_ns, third_site, uapi_get
from tests.netns.netlab import Lab, ping, run, transfer

pytestmark = [pytest.mark.netns, pytest.mark.interop]

MIB = 1 << 20


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[Lab, Node, Node]]:
    """Linker on ``l`` (10.1.0.1/24, underlay 192.0.2.1), wireguard-go on ``g`` (10.2.0.1/24, 192.0.2.2).

    Neither has a persistent keepalive, so the side that sends first initiates the handshake."""
    with Lab("io", tmp_path) as lab:
        ln, gn = lab.host("l"), lab.host("g")
        lab.link(ln, "192.0.2.1/24", gn, "192.0.2.2/24")
        lk = Node.make(lab, ln, "l", "10.1.0.1/24", "192.0.2.1")
        go = Node.make(lab, gn, "g", "10.2.0.1/24", "192.0.2.2")
        lk.peers = [go.as_peer("10.2.0.0/24")]
        go.peers = [lk.as_peer("10.1.0.0/24")]
        lk.start()
        go.start_wireguard_go(log_level="verbose")
        yield lab, lk, go


def handshakes_initiated_by_linker(lk: Node) -> int:
    return lk.log_text().count("sending handshake initiation")


@pytest.mark.slow
@pytest.mark.parametrize("initiator", ["linker", "wireguard-go"])
def test_each_side_initiates_ping_and_checksummed_transfer(sites: tuple[Lab, Node, Node], initiator: str) -> None:
    lab, lk, go = sites
    started = time.time()
    first, second = (lk, go) if initiator == "linker" else (go, lk)
    assert ping(first.ns, second.ip), lk.log_text()
    assert ping(second.ns, first.ip)
    if initiator == "linker":
        assert handshakes_initiated_by_linker(lk) >= 1
        assert "handshake complete" in lk.log_text()  # linker consumed wireguard-go's response
    else:
        assert handshakes_initiated_by_linker(lk) == 0, "linker initiated although wireguard-go spoke first"
        assert "Sending handshake initiation" in go.log_text()

    size = 16 * MIB
    sent, received, _ = transfer(lab, second.ns, second.ip, first.ns, size)
    assert sent == received, "the bytes that arrived differ from those sent"

    peer = lk.dump()[go.pub]
    assert peer.endpoint == go.endpoint
    assert peer.allowed_ips == "10.2.0.0/24"
    assert started - 1 <= peer.latest_handshake <= time.time() + 1, peer
    assert peer.rx > 0 and peer.tx > 0
    assert (peer.tx if first is lk else peer.rx) >= size, peer
    # and wireguard-go agrees about linker
    theirs = go.dump()[lk.pub]
    assert theirs.endpoint == lk.endpoint and theirs.latest_handshake > 0
    assert (theirs.rx if first is lk else theirs.tx) >= size, theirs


@pytest.fixture
def three(sites: tuple[Lab, Node, Node]) -> tuple[Lab, Node, Node, Node]:
    """``sites`` plus wireguard-go on ``h`` (10.3.0.1/24) behind a second link of ``l`` (198.51.100.0/24).

    ``h`` knows linker; linker does not know ``h`` yet."""
    lab, lk, go = sites
    gh = third_site(lab, lk, "h")
    gh.start_wireguard_go()
    return lab, lk, go, gh


def test_wg_set_adds_a_wireguard_go_peer_to_the_running_daemon(three: tuple[Lab, Node, Node, Node]) -> None:
    lab, lk, go, gh = three
    assert ping(lk.ns, go.ip)
    assert not ping(lk.ns, gh.ip, count=1, timeout=1)
    lk.wg_set_peer(gh.as_peer("10.3.0.0/24"))
    assert "10.3.0.0/24" in lk.routes(), "wg set added a peer but no route to its AllowedIPs"
    assert ping(lk.ns, gh.ip), lk.log_text()
    assert ping(gh.ns, lk.ip)
    sent, received, _ = transfer(lab, gh.ns, gh.ip, lk.ns, 4 * MIB)
    assert sent == received
    peer = lk.dump()[gh.pub]
    assert peer.endpoint == gh.endpoint and peer.latest_handshake > 0 and peer.tx >= 4 * MIB
    assert ping(lk.ns, go.ip), "the first peer stopped working"


def test_wg_syncconf_removes_one_peer_and_keeps_the_others_session(three: tuple[Lab, Node, Node, Node]) -> None:
    _, lk, go, gh = three
    lk.wg_set_peer(gh.as_peer("10.3.0.0/24"))
    assert ping(lk.ns, go.ip) and ping(lk.ns, gh.ip)
    lk_hex, go_hex, gh_hex = b64_to_hex(lk.pub), b64_to_hex(go.pub), b64_to_hex(gh.pub)
    before = (handshake_ns(lk.uapi(), go_hex), handshake_ns(uapi_get(go.socket), lk_hex))
    assert all(before)

    # wg(8)'s own format (no Address): the file keeps g, drops h
    conf = lk.lab.dir / "sync.conf"
    conf.write_text(f"[Interface]\nPrivateKey = {lk.priv}\nListenPort = {lk.port}\n\n"
                    f"[Peer]\nPublicKey = {go.pub}\nAllowedIPs = 10.2.0.0/24\nEndpoint = {go.endpoint}\n")
    conf.chmod(0o600)
    run(["wg", "syncconf", lk.iface, str(conf)], lk.ns)

    assert gh_hex not in lk.uapi()
    assert list(lk.dump()) == [go.pub]
    assert "10.3.0.0/24" not in lk.routes(), lk.routes()
    assert not ping(lk.ns, gh.ip, count=1, timeout=1)
    assert ping(lk.ns, go.ip) and ping(go.ns, lk.ip)
    after = (handshake_ns(lk.uapi(), go_hex), handshake_ns(uapi_get(go.socket), lk_hex))
    assert after == before, "syncconf dropped the session of the peer it kept"
    assert lk.proc is not None and lk.proc.poll() is None
