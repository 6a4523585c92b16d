"""One measurement of one system that is up: ping through the idle tunnel, then iperf3 with 1 and N streams.

Traffic always goes from ``ns_a`` to the target address in ``ns_b``. The daemons' CPU time is read from /proc
right before and right after each iperf3 run, so it covers the transfer and little else.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness.ns import Underlay, listening, run
from bench.harness.procs import ProcessTable, cpu_seconds, run_ns, wait_for

IPERF_PORT = 5201
_PING_TIME = re.compile(r"time=([\d.]+) ms")


class MeasureError(Exception):
    """A measurement could not be taken (a tool failed or said nothing usable); the message says which."""


@dataclass(frozen=True)
class Settings:
    """How long and how much: seconds per iperf3 run, the stream counts, pings and their spacing."""

    duration: float = 10.0
    streams: tuple[int, ...] = (1, 4)
    pings: int = 200
    ping_interval: float = 0.01


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def parse_ping(output: str) -> list[float]:
    """The round-trip times, in ms, of the replies in ``ping -n`` output."""
    return [float(m) for m in _PING_TIME.findall(output)]


def ping(ns: str, target: str, count: int, interval: float) -> dict[str, float]:
    """``count`` pings from ``ns`` to ``target``: avg, p99, min, max in ms and the fraction lost."""
    deadline = math.ceil(count * interval + 5)
    res = run(["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1", "-w", str(deadline), target],
              ns=ns, check=False, timeout=deadline + 10)
    rtts = parse_ping(res.stdout)
    if not rtts:
        raise MeasureError(f"no ping reply from {target}: {res.stdout.strip()[-200:]} {res.stderr.strip()}")
    return {"avg_ms": sum(rtts) / len(rtts), "p99_ms": percentile(rtts, 99), "min_ms": min(rtts),
            "max_ms": max(rtts), "loss": 1 - len(rtts) / count}


def parse_iperf3(doc: dict[str, Any]) -> dict[str, float]:
    """Throughput (Mbit/s, as received), bytes received and the sender's retransmits from ``iperf3 -J`` output."""
    if doc.get("error"):
        raise MeasureError(f"iperf3: {doc['error']}")
    try:
        received, sent = doc["end"]["sum_received"], doc["end"]["sum_sent"]
    except KeyError as exc:
        raise MeasureError(f"iperf3 JSON lacks {exc}") from None
    return {"mbps": received["bits_per_second"] / 1e6, "bytes": float(received["bytes"]),
            "retransmits": float(sent.get("retransmits", 0))}


def loaded_pinger(procs: ProcessTable, ns: str, target: str, duration: float, interval: float,
                  log: Path) -> subprocess.Popen[Any]:
    """Pings ``interval`` apart for about ``duration`` s, started beside a transfer: the latency an interactive
    flow sees while the tunnel is busy (the standing queue a bulk flow builds in front of it). Started through
    ``procs``, so an interrupted run stops it too."""
    count = max(1, int((duration - 0.5) / interval))
    return procs.spawn(["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1",
                        "-w", str(math.ceil(duration + 5)), target], ns=ns, log=log)


def loaded_latency(procs: ProcessTable, proc: subprocess.Popen[Any], log: Path, timeout: float) -> dict[str, float]:
    """p50 and p99 (ms) and the loss of the pings of ``loaded_pinger``."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        procs.stop(proc.pid)
    out = log.read_text(errors="replace") if log.exists() else ""
    rtts = parse_ping(out)
    sent = re.search(r"(\d+) packets transmitted", out)
    if not rtts:
        raise MeasureError(f"no ping reply under load: {out.strip()[-200:]}")
    total = int(sent.group(1)) if sent else len(rtts)
    return {"p50_ms": percentile(rtts, 50), "p99_ms": percentile(rtts, 99), "loss": 1 - len(rtts) / max(1, total)}


def iperf3(ns: str, target: str, streams: int, duration: float) -> dict[str, float]:
    """One iperf3 TCP run from ``ns`` to the server on ``target``, bounded to ``duration`` + 30 s."""
    argv = ["iperf3", "-c", target, "-p", str(IPERF_PORT), "-t", str(duration), "-P", str(streams), "-J",
            "--connect-timeout", "5000"]
    res = run(argv, ns=ns, check=False, timeout=duration + 30)
    try:
        doc = json.loads(res.stdout)
    except json.JSONDecodeError:
        raise MeasureError(f"iperf3 exited {res.returncode}: {res.stderr.strip()[-300:]}") from None
    return parse_iperf3(doc)


def per_gb(cpu_s: float, nbytes: float) -> float | None:
    """CPU seconds per 10^9 bytes moved, or None when nothing moved."""
    return cpu_s / (nbytes / 1e9) if nbytes > 0 else None


def measure(net: Underlay, target: str, pids: list[int], procs: ProcessTable, settings: Settings) -> dict[str, Any]:
    """Measure the system whose daemons are ``pids`` (none for the raw link); returns the round's figures.

    Keys: ``rtt_avg_ms``, ``rtt_p99_ms``, ``loaded_p50_ms`` and ``loaded_p99_ms`` (pings during the 1-stream
    run), ``tcp<N>_mbps`` and ``cpu_s_per_gb_tcp<N>`` per stream count,
    ``cpu_s_per_gb`` over all iperf3 runs (None without daemons), and ``detail`` with the raw figures.
    Raises MeasureError (or SandboxError when a tool fails or hangs).
    """
    out: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    server = procs.spawn(["iperf3", "-s", "-B", target, "-p", str(IPERF_PORT)], ns=net.ns_b)
    try:
        if not wait_for(lambda: listening(net.ns_b, IPERF_PORT), 10):
            raise MeasureError("iperf3 server did not start listening")
        before_ns = run_ns(pids)
        detail["ping"] = ping(net.ns_a, target, settings.pings, settings.ping_interval)
        # the daemons' CPU time per round trip: what an idle tunnel's latency is made of, with the wake-ups
        detail["ping"]["cpu_us_per_ping"] = (run_ns(pids) - before_ns) / 1e3 / settings.pings if pids else None
        out["rtt_avg_ms"], out["rtt_p99_ms"] = detail["ping"]["avg_ms"], detail["ping"]["p99_ms"]
        out["cpu_us_per_ping"] = detail["ping"]["cpu_us_per_ping"]
        total_cpu = total_bytes = 0.0
        for n in settings.streams:
            before = cpu_seconds(pids)
            pinger, ping_log = None, Path(os.devnull)
            if n == 1:  # latency under load: pings beside the single stream
                fd, name = tempfile.mkstemp(prefix="linker-bench-ping-")
                os.close(fd)
                ping_log = Path(name)
                pinger = loaded_pinger(procs, net.ns_a, target, settings.duration, settings.ping_interval, ping_log)
            run_ = iperf3(net.ns_a, target, n, settings.duration)
            run_["cpu_s"] = cpu_seconds(pids) - before
            if pinger is not None:
                try:
                    detail["loaded_ping"] = loaded_latency(procs, pinger, ping_log, settings.duration + 15)
                finally:
                    ping_log.unlink(missing_ok=True)
                out["loaded_p50_ms"] = detail["loaded_ping"]["p50_ms"]
                out["loaded_p99_ms"] = detail["loaded_ping"]["p99_ms"]
            detail[f"tcp{n}"] = run_
            out[f"tcp{n}_mbps"] = run_["mbps"]
            out[f"cpu_s_per_gb_tcp{n}"] = per_gb(run_["cpu_s"], run_["bytes"]) if pids else None
            total_cpu += run_["cpu_s"]
            total_bytes += run_["bytes"]
        out["cpu_s_per_gb"] = per_gb(total_cpu, total_bytes) if pids else None
    finally:
        procs.stop(server.pid)
    out["detail"] = detail
    return out

