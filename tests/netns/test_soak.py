"""Soak (issue 14): two linker daemons for ten minutes and more with steady traffic, the protocol's real timers.

On demand only (LINKER_SOAK=1; about 14 minutes): pings every 0.2 s both ways and a checksummed 4 MiB transfer
every 30 s for ``MINUTES``, across at least four live rekeys (REKEY_AFTER_TIME, 120 s, on the wall clock, not a
fake one); no ping may be lost across them, the daemons' RSS stays within 10 % and their open file descriptors
constant. Then the tunnel goes quiet for longer than REJECT_AFTER_TIME (180 s): the sessions must be gone, and
the next packet must bring a fresh handshake. The figures are printed. Underlay TEST-NET, tunnel 10.x, namespaces.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from linker.wg.constants import REJECT_AFTER_TIME, REKEY_AFTER_TIME
from tests.netns.daemons import peered_pair
from tests.netns.netlab import REPO, Lab, ping, transfer

pytestmark = [pytest.mark.netns, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("LINKER_SOAK") != "1",
                                 reason="the soak runs on demand: LINKER_SOAK=1 (about 14 minutes)")]

MINUTES = float(os.environ.get("LINKER_SOAK_MINUTES", "10.5"))
MIB = 1 << 20


def rss_kb(pid: int) -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))  # type: ignore


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pinger(ns: str, addr: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.2", "-W", "2",
                             "-w", str(int(seconds)), addr], stdout=subprocess.PIPE, text=True, cwd=REPO)


def lost(proc: subprocess.Popen[str]) -> tuple[int, int]:
    out, _ = proc.communicate(timeout=60)
    found = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert found, out
    return int(found.group(1)), int(found.group(2))


def test_soak_rekeys_live_without_loss_and_stays_flat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seconds = MINUTES * 60
    with Lab("sk", tmp_path) as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        na, nb = peered_pair(lab, a, "192.0.2.1", b, "192.0.2.2", log_level="info")
        assert na.proc and nb.proc
        assert ping(a, nb.ip)
        pids = {"a": na.proc.pid, "b": nb.proc.pid}
        pings = [pinger(a, nb.ip, seconds), pinger(b, na.ip, seconds)]
        start = time.monotonic()
        samples: list[dict] = []
        transfers = 0
        while time.monotonic() - start < seconds - 20:
            sent, received, _ = transfer(lab, b, nb.ip, a, 4 * MIB)
            assert sent == received, "a transfer arrived altered"
            transfers += 1
            samples.append({k: (rss_kb(p), fds(p)) for k, p in pids.items()})
            time.sleep(max(0.0, 30 - (time.monotonic() - start) % 30))
        results = [lost(p) for p in pings]
        handshakes = {k: n.log_text().count("handshake complete") for k, n in (("a", na), ("b", nb))}
        quiet_from = time.monotonic()
        time.sleep(REJECT_AFTER_TIME + 10)  # no traffic, no keepalive: the sessions must expire
        before = na.counters()
        assert ping(a, nb.ip, count=3, timeout=5), "a fresh handshake after the sessions expired"
        after_quiet = {k: n.log_text().count("handshake complete") for k, n in (("a", na), ("b", nb))}
        figures = {"minutes": MINUTES, "transfers": transfers, "pings": results, "handshakes": handshakes,
                   "rss_kb_first_last": {k: (samples[1][k][0], samples[-1][k][0]) for k in pids},
                   "fds": {k: sorted({s[k][1] for s in samples}) for k in pids},
                   "quiet_s": round(time.monotonic() - quiet_from), "handshakes_after_quiet": after_quiet,
                   "counters_before_ping": {k: v for k, v in before.items() if "handshake" in k or "expired" in k}}
    with capsys.disabled():
        print(f"\nsoak: {figures}")
    expected_rekeys = int(seconds // REKEY_AFTER_TIME) - 1
    assert sum(handshakes.values()) - 1 >= min(4, expected_rekeys), f"too few live rekeys: {figures}"
    for transmitted, received in results:
        assert transmitted > 0 and received == transmitted, f"pings lost across rekeys: {figures}"
    for k in pids:  # after the first minute's warm-up
        first, last = samples[1][k][0], samples[-1][k][0]
        assert abs(last - first) <= 0.10 * first, f"RSS of {k} moved more than 10 %: {figures}"
        assert len({s[k][1] for s in samples}) == 1, f"open files of {k} changed: {figures}"
    assert sum(after_quiet.values()) > sum(handshakes.values()), "no new handshake after REJECT_AFTER_TIME"
