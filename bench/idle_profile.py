"""Where an idle tunnel's round trip goes: each system's two daemons in namespaces, first with no traffic, then
pinged 10 ms apart; per daemon, its CPU a second while idle and its user and kernel CPU per ping.

    sudo python bench/idle_profile.py                                    # linker, then the Python floor
    sudo python bench/idle_profile.py --systems linker,linker-baseline --baseline-tree /tmp/old
    sudo python bench/idle_profile.py --systems linker --py-spy --seconds 30   # and a flame graph per daemon

Builds two namespaces joined by a veth pair (TEST-NET-1, nothing leaves them), as bench/tunnels.py does, and
removes them and every process it started on exit. User and kernel time come from /proc in clock ticks: ping
long enough (the default 20 s is 2,000 pings) for a tick to be small beside the figures. Exit status 0, 2 when not
root or for bad usage.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness.measure import ping
from bench.harness.ns import Underlay
from bench.harness.procs import ProcessTable, descendants, read_stat, run_ns
from bench.harness.systems import BY_NAME, Context, System

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def user_and_kernel(pid: int) -> tuple[int, int]:
    """Clock ticks in user mode and in the kernel of ``pid`` and its live descendants."""
    user = kernel = 0
    for st in [read_stat(pid), *descendants(pid)]:
        if st is None:
            continue
        try:
            raw = Path(f"/proc/{st.pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = raw[raw.rindex(")") + 2:].split()  # fields[k] is stat field k + 3: utime 14, stime 15
        user += int(fields[11])
        kernel += int(fields[12])
    return user, kernel


def profile(system: System, net: Underlay, args: argparse.Namespace) -> None:
    pids = system.setup(net)
    count = int(args.seconds / args.interval)
    if args.quiet > 0:
        time.sleep(1)  # the tunnel check's ping answered: the keepalive it owes may still be due
        before_ns = {pid: run_ns([pid]) for pid in pids}
        time.sleep(args.quiet)
        for pid in pids:
            idle = (run_ns([pid]) - before_ns[pid]) / 1e6 / args.quiet
            print(f"{system.label} {system.sides[pid]}: {idle:.3f} ms CPU per second with no traffic")
    spies = []
    if args.py_spy:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        for pid in pids:
            out = args.out / f"idle-{system.name}-{system.sides[pid]}.svg"
            spies.append(subprocess.Popen([spy, "record", "--rate", "1000", "--pid", str(pid), "--nonblocking",
                                           "--duration", str(int(args.seconds) + 1), "--output", str(out)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1)
    before = {pid: user_and_kernel(pid) for pid in pids}
    result = ping(net.ns_a, system.target, count, args.interval)
    for pid in pids:
        user, kernel = (now - then for now, then in zip(user_and_kernel(pid), before[pid], strict=True))
        scale = 1e6 / _CLK_TCK / count
        print(f"{system.label} {system.sides[pid]}: {user * scale:,.0f} µs user + {kernel * scale:,.0f} µs kernel "
              "CPU per ping")
    print(f"{system.label}: rtt avg {result['avg_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, over {count} pings")
    for s in spies:
        s.wait(timeout=args.seconds + 60)
    if spies:
        print(f"flame graphs: {args.out}/idle-{system.name}-[ab].svg")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--systems", default="linker,python-floor",
                    help="comma-separated, measured in turn (default linker,python-floor)")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long to ping (default 20)")
    ap.add_argument("--interval", type=float, default=0.01, help="seconds between pings (default 0.01)")
    ap.add_argument("--quiet", type=float, default=5.0,
                    help="seconds of no traffic first, over which each daemon's idle CPU is measured (default 5)")
    ap.add_argument("--py-spy", action="store_true", help="sample each daemon with py-spy (rate 1000 Hz)")
    ap.add_argument("--baseline-tree", type=Path, help="the checkout whose daemon linker-baseline runs")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()), help="where the SVGs go")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    if not names or any(n not in BY_NAME for n in names):
        ap.error(f"--systems: choose from {', '.join(BY_NAME)}")
    if "linker-baseline" in names and args.baseline_tree is None:
        ap.error("linker-baseline needs --baseline-tree PATH")
    if os.geteuid() != 0:
        print("bench/idle_profile.py needs root (namespaces, TUN devices)", file=sys.stderr)
        return 2
    tag = str(os.getpid())
    net = Underlay.named(tag)
    procs = ProcessTable()
    with tempfile.TemporaryDirectory(prefix="lkp-") as tmp:
        ctx = Context(procs, Path(tmp), tag, args.baseline_tree.resolve() if args.baseline_tree else None)
        try:
            net.create()
            for name in names:
                system = BY_NAME[name](ctx)
                try:
                    profile(system, net, args)
                finally:
                    system.teardown()
        finally:
            procs.stop_all()
            net.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
