"""The daemon's wg-quick config: what it accepts, and errors that name the file, the line and the problem."""

from __future__ import annotations

import ipaddress
import os

import pytest

from linker.dataplane import config as cfg
from linker.errors import ConfigError, UserError
from linker.wg.keys import from_base64, generate_private_key, public_key_of, to_base64

PRIV = to_base64(generate_private_key(os.urandom))
PUB = to_base64(public_key_of(generate_private_key(os.urandom)))
PUB2 = to_base64(public_key_of(generate_private_key(os.urandom)))
PSK = to_base64(os.urandom(32))

GOOD = f"""
# a gateway
[Interface]
PrivateKey = {PRIV}
listenport = 51820
Address = 10.1.0.1/24, fd00::1/64
Address = 10.9.0.1/32
MTU = 1380
FwMark = 0x10
PostUp = iptables -A FORWARD -i %i -j ACCEPT

[Peer]
PublicKey = {PUB}
PresharedKey = {PSK}
Endpoint = 192.0.2.2:51820
AllowedIPs = 10.2.0.0/16, fd01::/64   # comment after a value
AllowedIPs = 10.3.0.0/16
PersistentKeepalive = 25

[peer]
PublicKey = {PUB2}
Endpoint = [2001:db8::7]:4500
AllowedIPs = 10.4.0.5/16
PersistentKeepalive = off
"""


def test_a_full_file_parses() -> None:
    c = cfg.parse(GOOD, "gw.conf")
    assert c.interface.private_key == from_base64(PRIV)
    assert c.interface.listen_port == 51820
    assert [str(a) for a in c.interface.addresses] == ["10.1.0.1/24", "fd00::1/64", "10.9.0.1/32"]
    assert c.interface.mtu == 1380 and c.interface.fwmark == 16 and c.interface.manage_routes
    p1, p2 = c.peers
    assert p1.public_key == from_base64(PUB) and p1.preshared_key == from_base64(PSK)
    assert p1.endpoint == ("192.0.2.2", 51820)
    assert [str(n) for n in p1.allowed_ips] == ["10.2.0.0/16", "fd01::/64", "10.3.0.0/16"]
    assert p1.persistent_keepalive == 25
    assert p2.endpoint == ("2001:db8::7", 4500)
    assert p2.allowed_ips == (ipaddress.ip_network("10.4.0.0/16"),)  # host bits cleared, as wg does
    assert p2.persistent_keepalive == 0 and p2.preshared_key is None


def test_defaults() -> None:
    c = cfg.parse(f"[Interface]\nPrivateKey = {PRIV}\n")
    assert c.interface.listen_port == 0 and c.interface.mtu == cfg.DEFAULT_MTU == 1420 and c.peers == ()


BAD_CONFIGS = [
    ("[Interface]\nListenPort = 1\n", 1, "no PrivateKey"),
    (f"[Interface]\nPrivateKey = {PRIV}\nListenPort = 70000\n", 3, "between 0 and 65535"),
    (f"[Interface]\nPrivateKey = {PRIV}\nMTU = big\n", 3, "must be a number"),
    (f"[Interface]\nPrivateKey = {PRIV}\nMTU = 100\n", 3, "between 576"),
    (f"[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.300/24\n", 3, "not an address"),
    (f"[Interface]\nPrivateKey = {PRIV}\nColour = blue\n", 3, "unknown key 'Colour'"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nEndpoint = 192.0.2.1:1\n", 3, "no PublicKey"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = abc\n", 4, "PublicKey"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PUB}\nEndpoint = 192.0.2.1\n", 5, "host:port"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PUB}\nEndpoint = 192.0.2.1:0\n", 5, "1..65535"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PUB}\nAllowedIPs = 10.0.0.0/33\n", 5, "not a net"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PUB}\nPersistentKeepalive = -1\n", 5, "between"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PUB}\n[Peer]\nPublicKey = {PUB}\n", 5, "line 3"),
    (f"[Interface]\nPrivateKey = {PRIV}\nPrivateKey = {PRIV}\n", 3, "given twice"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Interface]\n", 3, "second [Interface]"),
    (f"[Interface]\nPrivateKey = {PRIV}\n[Tunnel]\n", 3, "unknown section"),
    (f"ListenPort = 1\n[Interface]\nPrivateKey = {PRIV}\n", 1, "before any section"),
    (f"[Interface]\nPrivateKey = {PRIV}\nTable = 1234\n", 3, "Table = 1234"),
]


@pytest.mark.parametrize(("text", "line", "words"), BAD_CONFIGS, ids=[words for _, _, words in BAD_CONFIGS])
def test_errors_name_file_line_and_problem(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg.parse(text, "/etc/linker/linker0.conf")
    assert err.value.message.startswith(f"/etc/linker/linker0.conf:{line}: ")
    assert words in err.value.message


def test_no_interface_at_all() -> None:
    with pytest.raises(ConfigError, match="no \\[Interface\\]"):
        cfg.parse("# empty\n", "x.conf")


def test_an_error_never_echoes_key_material() -> None:
    with pytest.raises(ConfigError) as err:
        cfg.parse(f"[Interface]\nPrivateKey: {PRIV}\n", "x.conf")
    assert PRIV not in str(err.value) and PRIV[:20] not in str(err.value)


def test_table_off_leaves_routes_alone() -> None:
    assert not cfg.parse(f"[Interface]\nPrivateKey = {PRIV}\nTable = off\n").interface.manage_routes


def test_a_hostname_endpoint_is_resolved_once() -> None:
    c = cfg.parse(f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PUB}\nEndpoint = localhost:51820\n")
    assert c.peers[0].endpoint in (("127.0.0.1", 51820), ("::1", 51820))


def test_an_unresolvable_endpoint_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"x.conf:5: .*cannot resolve 'no-such-host.invalid'"):
        cfg.parse(f"[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPublicKey = {PUB}\n"
                  "Endpoint = no-such-host.invalid:51820\n", "x.conf")


def test_load_refuses_a_file_others_can_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "linker0.conf"
    path.write_text(GOOD)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        cfg.load(path)
    assert "readable by group or others (mode 644)" in err.value.message
    assert err.value.fix == f"chmod 600 {path}"
    path.chmod(0o600)
    assert cfg.load(path).interface.private_key == from_base64(PRIV)


def test_load_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="no such file"):
        cfg.load(tmp_path / "nope.conf")


@pytest.mark.parametrize("name", ["", "a" * 16, "has space", "a/b", "a:1"])
def test_bad_interface_names(name: str) -> None:
    with pytest.raises(UserError) as err:
        cfg.check_interface_name(name)
    assert err.value.message.startswith("interface name ") and "--interface" in (err.value.fix or "")


def test_interface_named_after_the_file() -> None:
    from pathlib import Path
    assert cfg.interface_name_for(Path("/etc/linker/linker0.conf")) == "linker0"
