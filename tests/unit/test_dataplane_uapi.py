"""The UAPI protocol, pure: get's format, set's semantics (as wireguard-go), request framing."""

from __future__ import annotations

import errno
import ipaddress
import os

import pytest

from linker.dataplane.uapi import UapiFailure, apply_set, complete_request, handle_request, render_get
from linker.wg.actions import SendDatagram
from linker.wg.device import Device
from linker.wg.keys import generate_private_key, public_key_of


class FakeHost:
    def __init__(self) -> None:
        self.listen_port = 51820
        self.fwmark = 0
        self.taken: set[int] = set()

    def rebind(self, port: int) -> None:
        if port in self.taken:
            raise OSError(errno.EADDRINUSE, "in use")
        self.listen_port = port

    def set_fwmark(self, mark: int) -> None:
        self.fwmark = mark


def key() -> bytes:
    return generate_private_key(os.urandom)


@pytest.fixture
def dev() -> Device:
    return Device(key(), rng=os.urandom, wallclock=lambda: 1_700_000_000.25)


def nets(d: Device, public: bytes) -> list[str]:
    return sorted(str(n) for n in d.allowed_ips.networks_of(d.peers[public]))


def test_get_lists_the_device_then_each_peer(dev: Device) -> None:
    peer = public_key_of(key())
    dev.set_peer(peer, 0.0, endpoint=("192.0.2.9", 51820), allowed_ips=["10.2.0.0/16", "fd01::/64"],
                 persistent_keepalive=25)
    host = FakeHost()
    host.fwmark = 7
    text = render_get(dev, host.listen_port, host.fwmark)
    # turning on the keepalive sent a handshake initiation (148 bytes), counted as transmitted
    assert text.endswith("\nerrno=0\n\n")
    lines = text[:-2].split("\n")
    assert lines[:3] == [f"private_key={dev.private_key.hex()}", "listen_port=51820", "fwmark=7"]
    assert lines[3:] == [f"public_key={peer.hex()}", f"preshared_key={'0' * 64}", "protocol_version=1",
                         "endpoint=192.0.2.9:51820", "last_handshake_time_sec=0", "last_handshake_time_nsec=0",
                         "tx_bytes=148", "rx_bytes=0", "persistent_keepalive_interval=25",
                         "allowed_ip=10.2.0.0/16", "allowed_ip=fd01::/64", "errno=0"]


def test_get_brackets_ipv6_endpoints(dev: Device) -> None:
    dev.set_peer(public_key_of(key()), 0.0, endpoint=("2001:db8::1", 4500))
    assert "endpoint=[2001:db8::1]:4500\n" in render_get(dev, 1, 0)


def test_set_adds_a_peer_with_everything_at_once(dev: Device) -> None:
    peer = public_key_of(key())
    psk = os.urandom(32)
    actions = apply_set(dev, FakeHost(), [
        f"public_key={peer.hex()}", f"preshared_key={psk.hex()}", "endpoint=192.0.2.5:51820",
        "persistent_keepalive_interval=25", "replace_allowed_ips=true", "allowed_ip=10.2.0.0/16",
        "allowed_ip=10.3.0.1/24"], now=1.0)
    p = dev.peers[peer]
    assert p.endpoint == ("192.0.2.5", 51820) and p.persistent_keepalive == 25
    assert p.secrets.preshared_key == psk
    assert nets(dev, peer) == ["10.2.0.0/16", "10.3.0.0/24"]
    # turning persistent keepalive on with an endpoint sends at once (a handshake, there being no session)
    assert len(actions) == 1 and isinstance(actions[0], SendDatagram)
    assert actions[0].endpoint == ("192.0.2.5", 51820) and actions[0].data[0] == 1


def test_allowed_ips_are_added_unless_replaced(dev: Device) -> None:
    peer = public_key_of(key())
    host = FakeHost()
    apply_set(dev, host, [f"public_key={peer.hex()}", "allowed_ip=10.2.0.0/16"], 0.0)
    apply_set(dev, host, [f"public_key={peer.hex()}", "allowed_ip=10.3.0.0/16"], 0.0)
    assert nets(dev, peer) == ["10.2.0.0/16", "10.3.0.0/16"]
    apply_set(dev, host, [f"public_key={peer.hex()}", "allowed_ip=10.9.0.0/16", "replace_allowed_ips=true",
                          "allowed_ip=10.4.0.0/16"], 0.0)
    assert nets(dev, peer) == ["10.4.0.0/16"]  # replace drops what came before it in the same request too


def test_update_only_does_not_create(dev: Device) -> None:
    peer = public_key_of(key())
    apply_set(dev, FakeHost(), [f"public_key={peer.hex()}", "update_only=true", "allowed_ip=10.2.0.0/16"], 0.0)
    assert peer not in dev.peers
    dev.set_peer(peer, 0.0)
    apply_set(dev, FakeHost(), [f"public_key={peer.hex()}", "update_only=true", "endpoint=192.0.2.1:1"], 0.0)
    assert dev.peers[peer].endpoint == ("192.0.2.1", 1)


def test_remove_and_replace_peers(dev: Device) -> None:
    a, b, c = (public_key_of(key()) for _ in range(3))
    for p in (a, b):
        dev.set_peer(p, 0.0, allowed_ips=[f"10.{len(dev.peers) + 1}.0.0/16"])
    apply_set(dev, FakeHost(), [f"public_key={a.hex()}", "remove=true"], 0.0)
    assert set(dev.peers) == {b}
    assert dev.allowed_ips.lookup(ipaddress.ip_address("10.1.0.1").packed) is None
    apply_set(dev, FakeHost(), ["replace_peers=true", f"public_key={c.hex()}", "allowed_ip=10.9.0.0/16"], 0.0)
    assert set(dev.peers) == {c}


def test_our_own_public_key_is_ignored(dev: Device) -> None:
    apply_set(dev, FakeHost(), [f"public_key={dev.public_key.hex()}", "allowed_ip=10.2.0.0/16"], 0.0)
    assert dev.peers == {}


def test_device_lines(dev: Device) -> None:
    host = FakeHost()
    new = key()
    apply_set(dev, host, [f"private_key={new.hex()}", "listen_port=4500", "fwmark=51"], 0.0)
    assert dev.private_key == new and host.listen_port == 4500 and host.fwmark == 51
    host.taken.add(5000)
    with pytest.raises(UapiFailure) as err:
        apply_set(dev, host, ["listen_port=5000"], 0.0)
    assert err.value.code == -errno.EADDRINUSE and host.listen_port == 4500


@pytest.mark.parametrize("line", [
    "public_key=zz", "private_key=" + "0" * 64, "listen_port=70000", "listen_port=-1", "fwmark=x",
    "bogus=1", "no equals sign", "replace_peers=false",
])
def test_bad_device_lines_are_refused(dev: Device, line: str) -> None:
    with pytest.raises(UapiFailure) as err:
        apply_set(dev, FakeHost(), [line], 0.0)
    assert err.value.code in (-errno.EINVAL, -errno.EPROTO)


@pytest.mark.parametrize("line", [
    "endpoint=192.0.2.1", "endpoint=nohost:1", "endpoint=[2001:db8::1]", "allowed_ip=10.0.0.0/40",
    "persistent_keepalive_interval=70000", "preshared_key=12", "protocol_version=2", "update_only=false",
    "remove=yes", "replace_allowed_ips=1", "bogus=1",
])
def test_bad_peer_lines_are_refused_and_that_peer_left_alone(dev: Device, line: str) -> None:
    ok, bad = public_key_of(key()), public_key_of(key())
    with pytest.raises(UapiFailure):
        apply_set(dev, FakeHost(), [f"public_key={ok.hex()}", "allowed_ip=10.1.0.0/16",
                                    f"public_key={bad.hex()}", "allowed_ip=10.2.0.0/16", line], 0.0)
    assert ok in dev.peers and nets(dev, ok) == ["10.1.0.0/16"]  # applied before the bad line, as wireguard-go
    assert not dev.peers.get(bad) or nets(dev, bad) == []


def test_handle_request_answers_errno(dev: Device) -> None:
    host = FakeHost()
    reply, _, changed = handle_request(dev, host, "set=1\nlisten_port=abc\n\n", 0.0)
    assert reply == f"errno={-errno.EINVAL}\n\n" and changed
    reply, _, changed = handle_request(dev, host, "get=1\n\n", 0.0)
    assert reply.endswith("errno=0\n\n") and not changed


@pytest.mark.parametrize(("buf", "size"), [
    (b"", 0), (b"ge", 0), (b"get=1\n", 0), (b"get=1\n\n", 7), (b"get=1\n\nget=1\n\n", 7),
    (b"set=1\npublic_key=ab\n", 0), (b"set=1\npublic_key=ab\n\n", 21), (b"set=1\n\n", 7),
])
def test_request_framing(buf: bytes, size: int) -> None:
    assert complete_request(buf) == size


@pytest.mark.parametrize("buf", [b"del=1\n", b"hello world\n", b"get=1\nx"])
def test_unknown_operations_are_refused(buf: bytes) -> None:
    with pytest.raises(ValueError):
        complete_request(buf)


def test_set_listen_port_refused_by_the_daemons_own_error_is_answered_not_raised(dev: Device) -> None:
    """The daemon's rebind raises PortInUseError (a LinkerError, not an OSError) for a taken port: the request is
    answered with -EADDRINUSE; the exception must not escape into the loop (it stopped the daemon)."""
    from linker.dataplane.udp import PortInUseError

    class Taken(FakeHost):
        def rebind(self, port: int) -> None:
            raise PortInUseError(f"UDP port {port} is already in use", "pick another ListenPort")

    host = Taken()
    reply, actions, _ = handle_request(dev, host, "set=1\nlisten_port=51999\n\n", 0.0)
    assert reply == f"errno={-errno.EADDRINUSE}\n\n" and actions == []
    assert host.listen_port == 51820
