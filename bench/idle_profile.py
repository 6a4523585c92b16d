"""Where an idle tunnel's round trip goes: linker's two daemons in namespaces, pings 10 ms apart, each daemon
sampled by py-spy (or timed by the kernel's CPU accounting alone).

    sudo python bench/idle_profile.py                        # idle CPU and CPU per ping of each daemon
    sudo python bench/idle_profile.py --py-spy --seconds 30  # and a py-spy flame graph per daemon (SVG)
    sudo python bench/idle_profile.py --baseline-tree /tmp/old   # the same for another checkout's daemon

Builds two namespaces joined by a veth pair (TEST-NET-1, nothing leaves them), as bench/tunnels.py does, and
removes them and every process it started on exit. Exit status 0, 2 when not root.
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
from bench.harness.procs import ProcessTable, run_ns
from bench.harness.systems import Context, Linker, LinkerBaseline


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to ping (default 10)")
    ap.add_argument("--interval", type=float, default=0.01, help="seconds between pings (default 0.01)")
    ap.add_argument("--quiet", type=float, default=5.0,
                    help="seconds of no traffic first, over which each daemon's idle CPU is measured (default 5)")
    ap.add_argument("--py-spy", action="store_true", help="sample both daemons with py-spy (rate 1000 Hz)")
    ap.add_argument("--baseline-tree", type=Path, help="profile this checkout's daemon instead")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()), help="where the SVGs go")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/idle_profile.py needs root (namespaces, TUN devices)", file=sys.stderr)
        return 2
    tag = str(os.getpid())
    net = Underlay.named(tag)
    procs = ProcessTable()
    with tempfile.TemporaryDirectory(prefix="lkp-") as tmp:
        ctx = Context(procs, Path(tmp), tag, args.baseline_tree)
        system = LinkerBaseline(ctx) if args.baseline_tree else Linker(ctx)
        try:
            net.create()
            pids = system.setup(net)
            count = int(args.seconds / args.interval)
            if args.quiet > 0:
                time.sleep(1)  # the tunnel check's ping answered, the keepalive it owes may still be due
                before = {pid: run_ns([pid]) for pid in pids}
                time.sleep(args.quiet)
                for pid in pids:
                    idle = (run_ns([pid]) - before[pid]) / 1e6 / args.quiet
                    print(f"daemon {system.sides[pid]}: {idle:.3f} ms CPU per second with no traffic")
            spies = []
            if args.py_spy:
                spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
                for pid in pids:
                    side = system.sides[pid]
                    out = args.out / f"idle-{system.name}-{side}.svg"
                    spies.append(subprocess.Popen([spy, "record", "--rate", "1000", "--pid", str(pid), "--nonblocking",
                                                   "--duration", str(int(args.seconds) + 1), "--output", str(out)],
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(1)
            before = {pid: run_ns([pid]) for pid in pids}
            result = ping(net.ns_a, system.target, count, args.interval)
            for pid in pids:
                cpu = (run_ns([pid]) - before[pid]) / 1e3 / count
                print(f"daemon {system.sides[pid]}: {cpu:,.0f} µs CPU per ping")
            print(f"rtt avg {result['avg_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, over {count} pings")
            for s in spies:
                s.wait(timeout=args.seconds + 60)
            if spies:
                print(f"flame graphs: {args.out}/idle-{system.name}-[ab].svg")
        finally:
            system.teardown()
            procs.stop_all()
            net.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
