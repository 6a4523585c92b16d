"""The handshake-flood scenario, shared by tests/netns/test_flood.py (what must hold) and bench/flood.py (figures).

Namespaces: ``a`` runs the victim (linker's daemon, or wireguard-go for the anchor) at 192.0.2.1 and, on a second
link, 203.0.113.1; ``b`` runs the real peer (Debian's wireguard-go: a reference initiator) at 192.0.2.2; ``x``
floods a's port from 64 addresses 203.0.113.100-163 (tests/netns/flooder.py). The session a<->b is established,
the flood starts, and ``restart_at`` seconds in b's daemon restarts with the same key: its traffic can only resume
through a new handshake, which a must accept while flooded (its cookie reply, then b's retry with MAC2).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness.procs import cpu_seconds
from linker.sandbox import netns
from tests.netns.daemons import Node
from tests.netns.netlab import REPO, Lab, ping

SOURCES = "203.0.113.100/64"


@dataclass(frozen=True)
class FloodResult:
    victim: str
    flood: dict  # the flooder's own figures
    resumed_after: float | None  # seconds from b's restart to its first ping answered; None: not in the run
    flood_left: float  # seconds of flood still to come when b's traffic resumed (> 0: resumed under the flood)
    cpu_seconds: float  # the victim daemon's CPU during the run
    peak_rss_mb: float  # the victim daemon's VmHWM
    rss_growth_mb: float  # VmHWM after the flood minus before it
    counters: dict  # linker's drop/cookie counters (empty for wireguard-go)


def _hwm_mb(pid: int) -> float:
    found = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(found.group(1)) / 1024 if found else 0.0


def run_flood(lab: Lab, victim: str, rate: float, seconds: float, restart_at: float,
              batch: int = 64) -> FloodResult:
    """One run; ``victim`` is "linker" or "wireguard-go". Bounded: the flood lasts ``seconds`` (at most 60)."""
    a, b, x = lab.host("a"), lab.host("b"), lab.host("x")
    lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
    _, x_a = lab.link(a, "203.0.113.1/24", x, None)
    netns.ip_batch([f"addr add 203.0.113.{100 + i}/24 dev {x_a}" for i in range(64)], x)
    na = Node.make(lab, a, "a", "10.1.0.1/24", "192.0.2.1")
    nb = Node.make(lab, b, "b", "10.2.0.1/24", "192.0.2.2")
    na.peers = [nb.as_peer("10.2.0.0/24", endpoint=None)]  # a never initiates: b's handshake must get through
    nb.peers = [na.as_peer("10.1.0.0/24")]
    if victim == "linker":
        na.start(log_level="info")
    else:
        na.start_wireguard_go()
    nb.start_wireguard_go()
    assert ping(b, na.ip), "the tunnel works before the flood"
    assert na.proc is not None
    pid = na.proc.pid
    cpu0, hwm0 = cpu_seconds([pid]), _hwm_mb(pid)
    out = lab.dir / "flood.json"
    flooder = lab.spawn(x, [sys.executable, "-m", "tests.netns.flooder", "--target", "203.0.113.1:51820",
                            "--public-key", na.pub, "--sources", SOURCES, "--rate", str(rate),
                            "--seconds", str(seconds), "--batch", str(batch)], log=out)
    started = time.monotonic()
    time.sleep(restart_at)
    lab.stop(nb.proc)  # b's daemon goes, its interface with it
    nb.start_wireguard_go()
    restarted = time.monotonic()
    pings = subprocess.Popen(["ip", "netns", "exec", b, "ping", "-n", "-i", "0.2", "-W", "1",
                              "-w", str(int(seconds + 10)), na.ip], stdout=subprocess.PIPE, text=True, cwd=REPO)
    resumed = None
    assert pings.stdout is not None
    for line in pings.stdout:
        if "bytes from" in line:
            resumed = time.monotonic()
            break
    if pings.poll() is None:
        pings.terminate()
    pings.wait(timeout=10)
    flooder.wait(timeout=seconds + 30)
    lines = out.read_text().strip().splitlines()
    figures = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"error": out.read_text()[-500:]}
    counters = na.counters() if victim == "linker" else {}
    return FloodResult(victim, figures, None if resumed is None else round(resumed - restarted, 2),
                       round(started + seconds - resumed, 2) if resumed else -1.0,
                       round(cpu_seconds([pid]) - cpu0, 2), round(_hwm_mb(pid), 1), round(_hwm_mb(pid) - hwm0, 1),
                       {k: v for k, v in counters.items() if "cookie" in k or "handshake" in k or "mac" in k})


def as_json(result: FloodResult) -> str:
    return json.dumps(result.__dict__, sort_keys=True)
