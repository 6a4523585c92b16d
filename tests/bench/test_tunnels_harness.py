"""The tunnel benchmark's harness (bench/tunnels.py) end to end, in --quick mode, on raw veth and wireguard-go.

These check that the harness measures something sane and leaves nothing behind, completed or interrupted.
They assert no speed: the benchmark itself is the measure.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.harness.procs import descendants, read_stat

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HARNESS = [sys.executable, str(REPO / "bench" / "tunnels.py"), "--quick", "--systems", "raw,wireguard-go",
           "--no-chart"]


@pytest.fixture(autouse=True)
def tools() -> None:
    missing = [t for t in ("iperf3", "wireguard-go", "wg", "ping") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (bash scripts/setup installs them)")


def namespaces() -> set[str]:
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split())


def leftovers(processes: list[dict]) -> list[dict]:
    """The processes still running: same PID and same start time (a reused PID is someone else's)."""
    left = []
    for p in processes:
        st = read_stat(p["pid"])
        if st is not None and st.start == p["start"]:
            left.append(p)
    return left


def comm(pid: int) -> str:
    """The program name of a process, or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""


def harness_namespaces(pid: int) -> set[str]:
    return {f"lkb-{pid}-a", f"lkb-{pid}-b"}


def last_resort(proc: subprocess.Popen, pid_namespaces: set[str]) -> None:
    """If the harness itself misbehaved, stop it (its daemons die with it) and remove its namespaces."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for ns in pid_namespaces & namespaces():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_quick_run_measures_raw_and_wireguard_go_and_cleans_up(tmp_path: Path) -> None:
    proc = subprocess.Popen([*HARNESS, "--out", str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        last_resort(proc, harness_namespaces(proc.pid))
    assert proc.returncode == 0, err
    [path] = tmp_path.glob("*.json")
    doc = json.loads(path.read_text())

    for name in ("raw", "wireguard-go"):
        entry = doc["systems"][name]
        assert entry["available"], entry["reason"]
        assert len(entry["rounds"]) == 1
        assert "error" not in entry["rounds"][0], entry["rounds"][0]
        s = entry["summary"]
        assert s["tcp1_mbps"]["median"] > 0
        assert s["tcp4_mbps"]["median"] > 0
        assert 0 < s["rtt_avg_ms"]["median"] <= s["rtt_p99_ms"]["median"]
        assert entry["rounds"][0]["detail"]["ping"]["loss"] < 0.5
        assert 0 < s["loaded_p50_ms"]["median"] <= s["loaded_p99_ms"]["median"]  # pings beside the single stream
        assert entry["label"] in out  # the table names it
    assert doc["systems"]["raw"]["summary"]["cpu_s_per_gb"] is None  # no daemon to charge
    assert doc["systems"]["wireguard-go"]["summary"]["cpu_s_per_gb"]["median"] > 0
    assert doc["systems"]["wireguard-go"]["ratios"]["wireguard-go"]["tcp1_mbps"] == pytest.approx(1.0)
    assert "ratio to wireguard-go" in out
    assert out.index("daemon CPU") < out.index("TCP 1 stream"), "CPU per GB is the first figure"

    assert not set(doc["namespaces"]) & namespaces()
    assert [p["program"] for p in doc["processes"]].count("wireguard-go") == 2
    assert leftovers(doc["processes"]) == []
    assert not [s for s in Path("/var/run/wireguard").glob(f"lkb-{proc.pid}-*")]


def test_interrupted_run_removes_namespaces_and_processes(tmp_path: Path) -> None:
    # wireguard-go first (the first round keeps the order given): the interrupt comes while it runs, not after a
    # whole measurement of the bare link
    argv = [*HARNESS[:HARNESS.index("--systems") + 1], "wireguard-go,raw", *HARNESS[HARNESS.index("--systems") + 2:]]
    proc = subprocess.Popen([*argv, "--duration", "20", "--out", str(tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ours = harness_namespaces(proc.pid)
    seen: dict[int, int] = {}
    try:
        # wait until the harness is in the middle of it: namespaces up and a wireguard-go daemon running
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            kids = descendants(proc.pid)
            seen.update({k.pid: k.start for k in kids})
            if ours <= namespaces() and any(comm(k.pid) == "wireguard-go" for k in kids):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the harness never got to wireguard-go: {proc.communicate()}")
        time.sleep(1)
        seen.update({k.pid: k.start for k in descendants(proc.pid)})
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        last_resort(proc, ours)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not ours & namespaces()
    assert leftovers([{"pid": pid, "start": start} for pid, start in seen.items()]) == []
    [path] = tmp_path.glob("*.json")
    doc = json.loads(path.read_text())
    assert doc["interrupted"] is True
    assert leftovers(doc["processes"]) == []
