"""linker's protocol core (over a plain UDP socket, no TUN) against Debian's wireguard-go, each side initiating.

This isolates the protocol from linker's TUN and event loop: if it fails, the bug is in linker/wg/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns.netlab import Lab, run

pytestmark = [pytest.mark.netns, pytest.mark.interop]

REPO = Path(__file__).resolve().parents[2]


def sh(*args: str, ns: str | None = None, **kw) -> subprocess.CompletedProcess:
    return run(list(args), ns, timeout=30, **kw)


@pytest.fixture
def wg_go_pair(tmp_path):
    """Namespace `me` (192.0.2.1) and namespace `go` (192.0.2.2) running wireguard-go on wg iface 10.2.0.1/24."""
    with Lab("ic", tmp_path) as lab:
        me, go = lab.host("me"), lab.host("go")
        iface = f"lkg{lab.tag}"[-15:]
        lab.link(me, "192.0.2.1/24", go, "192.0.2.2/24")
        keys = {}
        for who in ("me", "go"):
            priv = sh("wg", "genkey").stdout.strip()
            keys[who] = (priv, sh("wg", "pubkey", input=priv).stdout.strip())
        lab.spawn(go, ["wireguard-go", "-f", iface], env=dict(os.environ, WG_PROCESS_FOREGROUND="1"))
        sock = Path(f"/var/run/wireguard/{iface}.sock")
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        keyfile = tmp_path / "go.key"
        keyfile.write_text(keys["go"][0])
        keyfile.chmod(0o600)
        sh("wg", "set", iface, "private-key", str(keyfile), "listen-port", "51820", "peer", keys["me"][1],
           "endpoint", "192.0.2.1:51820", "allowed-ips", "10.1.0.0/24", ns=go)
        sh("ip", "addr", "add", "10.2.0.1/24", "dev", iface, ns=go)
        sh("ip", "link", "set", iface, "up", ns=go)
        sh("ip", "route", "add", "10.1.0.0/24", "dev", iface, ns=go)
        yield {"me": me, "go": go, "iface": iface, "keys": keys}


def core_peer(env: dict, mode: str) -> subprocess.Popen:
    priv, _ = env["keys"]["me"]
    _, go_pub = env["keys"]["go"]
    return subprocess.Popen(["ip", "netns", "exec", env["me"], sys.executable, "-m", "tests.interop.core_peer",
                             priv, go_pub, "192.0.2.1", "192.0.2.2", mode],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def dump(env: dict) -> list[list[str]]:
    out = sh("wg", "show", env["iface"], "dump", ns=env["go"]).stdout.strip().splitlines()
    return [line.split("\t") for line in out[1:]]


def test_linker_core_initiates_to_wireguard_go(wg_go_pair):
    peer = core_peer(wg_go_pair, "initiate")
    out, err = peer.communicate(timeout=30)
    assert peer.returncode == 0, err
    result = json.loads(out)
    assert result["counters"]["tx_handshake_initiation"] == 1
    [row] = dump(wg_go_pair)
    assert row[0] == wg_go_pair["keys"]["me"][1] and row[2] == "192.0.2.1:51820"
    assert int(row[4]) > 0, "wireguard-go records a handshake with linker"
    assert int(row[5]) > 0 and int(row[6]) > 0


def test_wireguard_go_initiates_to_linker_core(wg_go_pair):
    peer = core_peer(wg_go_pair, "respond")
    assert peer.stderr is not None and peer.stderr.readline().strip() == "listening"  # not a fixed sleep: CI is busy
    ping = subprocess.run(["ip", "netns", "exec", wg_go_pair["go"], "ping", "-c", "3", "-i", "0.3", "-W", "3",
                           "10.1.0.1"], capture_output=True, text=True, timeout=30)
    out, err = peer.communicate(timeout=30)
    assert peer.returncode == 0, err + ping.stdout
    result = json.loads(out)
    assert result["counters"]["tx_handshake_response"] == 1 and result["answered"] == 3
    assert " 0% packet loss" in ping.stdout, ping.stdout
