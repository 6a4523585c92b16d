"""Tunnel throughput, latency and CPU cost: linker against wireguard-go, OpenVPN and the bare link (issue 6).

    sudo python bench/tunnels.py                       # every system, 3 rounds, 10 s per iperf3 run
    sudo python bench/tunnels.py --quick --systems raw,wireguard-go
    sudo python bench/tunnels.py --systems linker,linker-baseline --baseline-tree /tmp/old   # before and after
    sudo python bench/tunnels.py --systems linker,python-floor --idle-only --rounds 5       # idle RTT alone

Builds two network namespaces joined by a veth pair (TEST-NET-1 underlay, nothing else) and measures the
systems round-robin: each round sets every system up, measures it and takes it down, in an order rotated
from round to round so that no system always runs first. Per system and round: ping through the idle tunnel,
then iperf3 TCP with 1 and 4 streams, and the tunnel daemons' CPU time over those transfers. Prints the table
(median and min-max over rounds, ratios to wireguard-go and to OpenVPN AES-256-GCM), writes
bench/results/<timestamp>.json and a PNG chart beside it. Cleans up its namespaces and processes on exit,
on SIGINT and SIGTERM and on errors. Exit status 0, 2 for bad usage (or not root), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import report
from bench.harness.measure import MeasureError, Settings, measure
from bench.harness.ns import Underlay
from bench.harness.procs import ProcessTable
from bench.harness.systems import ALL, BY_NAME, Context, SetupError, System
from linker.errors import SandboxError

RESULTS = Path(__file__).resolve().parent / "results"
SETUP_ALLOWANCE = 8.0  # seconds per system and round for setup, teardown and the ping (for the time estimate)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default=",".join(cls.name for cls in ALL),
                    help=f"comma-separated subset of {', '.join(BY_NAME)} (default: all but linker-baseline)")
    ap.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    ap.add_argument("--duration", type=float, help="seconds per iperf3 run (default 10; 2 with --quick)")
    ap.add_argument("--pings", type=int, help="pings per measurement, 10 ms apart (default 200; 50 with --quick)")
    ap.add_argument("--quick", action="store_true", help="a fast smoke run: 1 round of 2 s runs")
    ap.add_argument("--idle-only", action="store_true",
                    help="only the pings through the idle tunnel (RTT and CPU per ping), no iperf3 runs")
    ap.add_argument("--baseline-tree", type=Path, metavar="PATH",
                    help="a checkout (e.g. `git worktree add PATH COMMIT`) whose linker daemon the system "
                         "linker-baseline runs, with this checkout's Python")
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON and PNG (default bench/results)")
    ap.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        ap.error(f"unknown system(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(BY_NAME)}")
    args.systems = names
    if "linker-baseline" in names and args.baseline_tree is None:
        ap.error("the system linker-baseline needs --baseline-tree PATH")
    if args.baseline_tree is not None:
        args.baseline_tree = args.baseline_tree.resolve()
        if not (args.baseline_tree / "linker" / "__main__.py").is_file():
            ap.error(f"--baseline-tree {args.baseline_tree}: no linker checkout there (no linker/__main__.py)")
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.pings = args.pings or (50 if args.quick else 200)
    if args.rounds < 1 or args.duration <= 0 or args.pings < 1:
        ap.error("--rounds, --duration and --pings must be positive")
    return args


def tool_version(argv: list[str]) -> str:
    """The first line a tool prints about its version, or why there is none."""
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except FileNotFoundError:
        return "not installed"
    return ((res.stdout or res.stderr).strip().splitlines() or ["?"])[0]


def git_commit(tree: Path) -> str | None:
    """The short commit checked out in ``tree``, or None outside git."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                          cwd=tree).stdout.strip() or None


def host_facts(baseline: Path | None) -> dict[str, Any]:
    """What the figures depend on: CPUs, kernel, load, tool versions, linker's commit (and the baseline's)."""
    commit = git_commit(Path(__file__).resolve().parents[1])
    return {
        **({"baseline_tree": str(baseline), "baseline_commit": git_commit(baseline)} if baseline else {}),
        "cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3], "linker_commit": commit or None,
        "iperf3": tool_version(["iperf3", "--version"]), "wireguard-go": tool_version(["wireguard-go", "--version"]),
        "openvpn": tool_version(["openvpn", "--version"]),
    }


def one_round(system: System, net: Underlay, procs: ProcessTable, settings: Settings) -> dict[str, Any]:
    """Set ``system`` up, measure it, take it down; a failure of the system is recorded, not raised."""
    t = time.monotonic()
    try:
        pids = system.setup(net)
        out = measure(net, system.target, pids, procs, settings)
    except (SetupError, MeasureError, SandboxError, subprocess.CalledProcessError,
            subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", None)
        out = {"error": f"{exc}{': ' + detail.strip() if isinstance(detail, str) and detail.strip() else ''}"}
    finally:
        system.teardown()
    out["seconds"] = round(time.monotonic() - t, 1)
    return out


def progress(label: str, rnd: dict[str, Any], streams: tuple[int, ...]) -> str:
    if "error" in rnd:
        return f"{label}: FAILED: {rnd['error']}"
    tcp = " ".join(f"tcp{n} {rnd[f'tcp{n}_mbps']:,.0f}" for n in streams)
    cpu = f" cpu {rnd['cpu_s_per_gb']:.1f} s/GB" if rnd.get("cpu_s_per_gb") is not None else ""
    return f"{label}: {tcp} Mbit/s, rtt {rnd['rtt_avg_ms']:.3f} / p99 {rnd['rtt_p99_ms']:.3f} ms{cpu}"


def run_rounds(systems: list[System], net: Underlay, procs: ProcessTable, settings: Settings, rounds: int,
               results: dict[str, Any]) -> None:
    """Every available system once per round, the order rotated by one each round; results filled in place."""
    live = [s for s in systems if results["systems"][s.name]["available"]]
    for i in range(rounds):
        order = live[i % len(live):] + live[:i % len(live)] if live else []
        results["order"].append([s.name for s in order])
        for system in order:
            rnd = one_round(system, net, procs, settings)
            entry = results["systems"][system.name]
            entry["rounds"].append(rnd)
            entry["commands"] = system.commands[-2:] or entry["commands"]
            print(f"[round {i + 1}/{rounds}] {progress(system.label, rnd, settings.streams)}", file=sys.stderr,
                  flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/tunnels.py needs root (it builds network namespaces and TUN devices)", file=sys.stderr)
        return 2
    settings = Settings(duration=args.duration, pings=args.pings, streams=() if args.idle_only else (1, 4))
    tag = str(os.getpid())
    net = Underlay.named(tag)
    procs = ProcessTable()
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    results: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"), "command": ["bench/tunnels.py", *(argv or sys.argv[1:])],
        "settings": {"rounds": args.rounds, "duration": args.duration, "streams": list(settings.streams),
                     "pings": args.pings, "ping_interval": settings.ping_interval},
        "host": host_facts(args.baseline_tree), "namespaces": [net.ns_a, net.ns_b], "order": [], "systems": {},
        "interrupted": False,
    }
    interrupted = False
    # SIGINT too: a shell starting us in the background would otherwise have it ignored
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with tempfile.TemporaryDirectory(prefix="lkb-") as tmp:
            ctx = Context(procs, Path(tmp), tag, args.baseline_tree)
            systems = [BY_NAME[n](ctx) for n in args.systems]
            for s in systems:
                reason = s.available()
                results["systems"][s.name] = {"name": s.name, "label": s.label, "available": reason is None,
                                              "reason": reason, "commands": [], "rounds": []}
                if reason:
                    print(f"{s.label}: not available ({reason})", file=sys.stderr)
            n_live = sum(e["available"] for e in results["systems"].values())
            estimate = args.rounds * n_live * (len(settings.streams) * (args.duration + 1.5) + SETUP_ALLOWANCE)
            print(f"{args.rounds} round(s) x {n_live} system(s), about {estimate / 60:.1f} min; "
                  f"namespaces {net.ns_a} {net.ns_b}", file=sys.stderr, flush=True)
            try:
                net.create()
                run_rounds(systems, net, procs, settings, args.rounds, results)
            except KeyboardInterrupt:
                interrupted = True
                print("interrupted: cleaning up", file=sys.stderr)
            finally:
                # a second Ctrl-C must not cut the cleanup short
                held = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
                try:
                    for s in systems:
                        s.teardown()
                    procs.stop_all()
                    net.delete()
                finally:
                    for s, h in held.items():
                        signal.signal(s, h)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    results["interrupted"] = interrupted
    results["processes"] = procs.started
    results["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["host"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    report.add_summaries(results)
    json_path = args.out / f"{stamp}.json"
    report.write_json(results, json_path)
    print(report.table(results))
    print(f"\nJSON: {json_path}")
    if not args.no_chart:
        try:
            report.chart(results, json_path.with_suffix(".png"))
            print(f"chart: {json_path.with_suffix('.png')}")
        except ImportError:
            print("chart: skipped (pip install -e '.[bench]' for matplotlib)")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
