"""The agent's files: the private key (0600, generated once), its settings, the last good configuration."""

import json
import stat

import pytest

from linker.contract import Membership, SiteEntry
from linker.errors import ConfigError, KeyFileError
from linker.gateway.agent import LastGood, render_daemon_config, write_private
from linker.gateway.keyfile import ensure_private_key, read_private_key
from linker.gateway.settings import AgentSettings
from linker.gateway.wgctl import PeerSpec
from linker.wg.keys import to_base64


def test_key_is_generated_once_private_and_stable(tmp_path):
    path = tmp_path / "state" / "private.key"
    key = ensure_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ensure_private_key(path) == key and len(key) == 32


def test_key_readable_by_others_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "private.key"
    ensure_private_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError) as info:
        read_private_key(path)
    assert f"chmod 600 {path}" in str(info.value)
    assert path.read_text().strip() not in str(info.value)


def test_malformed_key_says_how_to_make_one(tmp_path):
    path = tmp_path / "private.key"
    path.write_text("not a key\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="linker genkey"):
        read_private_key(path)


def test_settings_load_and_errors_name_the_file(tmp_path):
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({"link": "prod", "site": "us-east-1", "region": "us-east-1", "listen_port": 51000}))
    s = AgentSettings.load(path)
    assert (s.link, s.listen_port, s.interface, s.metrics_address) == ("prod", 51000, "linker0", "127.0.0.1")
    path.write_text('{"link": "prod", "site": "x", "region": "x", "colour": "red"}')
    with pytest.raises(ConfigError, match="colour"):
        AgentSettings.load(path)
    path.write_text('{"link": "prod",\n "site": }')
    with pytest.raises(ConfigError, match=rf"{path}:2"):
        AgentSettings.load(path)
    with pytest.raises(ConfigError, match="no such file"):
        AgentSettings.load(tmp_path / "missing.json")


def test_last_good_round_trips_and_ignores_a_damaged_file(tmp_path):
    lg = LastGood(tmp_path / "last-good.json")
    assert lg.load() is None
    m = Membership("prod", (SiteEntry("a", "a", "192.0.2.1", ("10.1.0.0/16",), 51820),))
    lg.save(m, {"a": b"\x05" * 32})
    assert lg.load() == (m, {"a": b"\x05" * 32})
    lg.path.write_text("{damaged")
    assert lg.load() is None


def test_daemon_config_is_wg_quick_and_written_private(tmp_path):
    s = AgentSettings(link="prod", site="a", region="a", run_dir=str(tmp_path / "run"))
    text = render_daemon_config(s, b"\x01" * 32, [PeerSpec(b"\x02" * 32, "192.0.2.9:51820", ("10.9.0.0/16",), 25)])
    assert text.startswith("[Interface]\nPrivateKey = " + to_base64(b"\x01" * 32))
    assert "[Peer]\nPublicKey = " + to_base64(b"\x02" * 32) in text
    assert "Endpoint = 192.0.2.9:51820" in text and "PersistentKeepalive = 25" in text
    write_private(s.daemon_config_path, text)
    assert stat.S_IMODE(s.daemon_config_path.stat().st_mode) == 0o600
