"""Failover gaps of a ``--ha`` link in the sandbox, per failure kind (issue 13, docs/HA.md).

    sudo .venv/bin/python bench/failover.py            # every kind: 5 runs, 2 of those that must not switch
    sudo .venv/bin/python bench/failover.py --kinds freeze,switch --runs 3 --keep

Brings up ``linker up A B --sandbox --ha`` (or uses the sandbox's link when it is up already), then, per run, fails
one site's active gateway (alternating the two sites, so that one site's 60 s hysteresis runs while the other is
measured) while a workload host of the other site pings a workload host of the failed site 10 times a second.
The gap is the longest time without an echo reply. Kinds:

    stop       1: the active instance stopped through the EC2 API (then started again: it comes back as standby)
    interface  2: the active's network interface down inside its host (then up again)
    freeze     3: the active's daemon frozen with SIGSTOP (then SIGCONT)
    agent      4: the active's agent killed (SIGKILL); its service manager restarts it; no switch expected
    partition  5: the site's two gateways cut from each other for 65 s; no switch expected
    api        6: the AWS API unreachable from every gateway for 60 s; no switch expected
    switch     planned: `linker failover SITE --to STANDBY`
    rolling    `linker up A B --sandbox --ha --instance-type T` with another type than the running one: every
               gateway replaced, one at a time per site (two planned switches per site)

Prints a table (runs, median and worst gap, route moves, the target) and writes JSON (--json). Removes the
sandbox at the end unless it was up before or --keep is given. Root. Exit status 0, 1 when a run failed, 2 for
bad usage.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from linker.errors import LinkerError
from linker.sandbox import chaos
from linker.sandbox.lifecycle import Sandbox

KINDS = ("stop", "interface", "freeze", "agent", "partition", "api", "switch", "rolling")
SWITCHING = {"stop", "interface", "freeze", "switch"}
TYPES = ("t3.small", "t3.micro")  # rolling: alternated, so that each run replaces every gateway
TARGETS = {"stop": "worst ≤ 10 s, median ≤ 5 s", "interface": "worst ≤ 10 s, median ≤ 5 s",
           "freeze": "worst ≤ 10 s, median ≤ 5 s", "agent": "no switch", "partition": "no switch",
           "api": "no switch", "switch": "≤ 1 s", "rolling": "≤ 1 s"}
HYSTERESIS = 62.0  # docs/HA.md rule 5 (60 s) and a margin: a site is failed again only after it
BASELINE = 3.0  # seconds of ping before the failure
AFTER = 6.0  # seconds of ping after the routes moved (or the window ended)
WINDOWS = {"agent": 20.0, "partition": 65.0, "api": 60.0}  # kinds that must not switch: how long to watch
LINK = "default"


def linker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "linker", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"})


def run_once(sandbox: Sandbox, kind: str, site: str, other: str, workdir: Path,
             regions: tuple[str, str]) -> dict[str, Any]:
    pair = chaos.pair(sandbox, LINK, site)
    active = pair.active
    assert active is not None and pair.standby is not None
    pinger = chaos.Pinger(sandbox, sandbox.workload(other), sandbox.workload(site)["private_ip"],
                          workdir / f"ping-{kind}-{site}.log")
    restore: Callable[[], None] = lambda: None  # noqa: E731
    owners: list[tuple[float, str | None]] = []
    try:
        time.sleep(BASELINE)
        t0 = time.time()
        host = pair.host(active)
        if kind == "stop":
            restore = chaos.fail_stop(sandbox, host)
        elif kind == "interface":
            restore = chaos.fail_interface(sandbox, host)
        elif kind == "freeze":
            restore = chaos.fail_freeze(sandbox, host)
        elif kind == "agent":
            restore = chaos.fail_agent(sandbox, host)
        elif kind == "partition":
            restore = chaos.fail_partition(sandbox, pair)
        elif kind == "api":
            restore = chaos.fail_api(sandbox, [site, other], LINK)
        elif kind == "rolling":
            reply = sandbox.client("ec2", site).describe_instances(InstanceIds=[active])
            current = reply["Reservations"][0]["Instances"][0]["InstanceType"]
            done = linker("up", *regions, "--sandbox", "--ha", "--yes", "--json", "--instance-type",
                          TYPES[1] if current == TYPES[0] else TYPES[0], timeout=900)
            if done.returncode != 0:
                raise LinkerError(f"linker up (rolling): {done.stdout[-2000:]}{done.stderr[-2000:]}")
        elif kind == "switch":
            done = linker("failover", site, "--sandbox", "--to", pair.standby, "--yes", "--no-wait", "--json",
                          timeout=60)
            if done.returncode != 0:
                raise LinkerError(f"linker failover: {done.stdout}{done.stderr}")
        window = 0.0 if kind == "rolling" else WINDOWS.get(kind, 30.0)  # rolling: `up` returned when done
        deadline = t0 + window
        moved_at = None
        while time.time() < deadline:
            owner = chaos.route_owner(sandbox, LINK, site)
            if not owners or owners[-1][1] != owner:
                owners.append((time.time(), owner))
            if kind in SWITCHING and owner not in (active, None):
                moved_at = time.time()
                break
            time.sleep(0.25)
        restore_at = time.time()
        if kind in ("partition", "api"):
            restore()  # traffic must have flowed throughout; what follows the end of the cut is not measured
        time.sleep(AFTER)
    finally:
        gaps = pinger.stop()
    if kind not in ("partition", "api"):
        restore()
    switched = sum(1 for (_, a), (_, b) in itertools.pairwise(owners) if b not in (a, None))
    final = chaos.route_owner(sandbox, LINK, site)
    return {"kind": kind, "site": site, "from": active, "to": final, "gap": round(gaps.longest, 2),
            "gap_began": round(gaps.longest_at - t0, 2), "routes_moved_after":
                None if moved_at is None else round(moved_at - t0, 2),
            "switches": switched + (1 if moved_at is not None and switched == 0 else 0),
            "replies": gaps.replies, "watched": round(restore_at - t0, 1)}


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| kind | runs | median gap s | worst gap s | route moves | target |",
            "| --- | ---: | ---: | ---: | ---: | --- |"]
    for kind in KINDS:
        mine = [r for r in results if r["kind"] == kind]
        if not mine:
            continue
        gaps = [r["gap"] for r in mine]
        rows.append(f"| {kind} | {len(mine)} | {statistics.median(gaps):.2f} | {max(gaps):.2f} | "
                    f"{sum(r['switches'] for r in mine)} | {TARGETS[kind]} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--regions", nargs=2, default=["us-east-1", "eu-west-1"], metavar="REGION")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {', '.join(KINDS)}")
    ap.add_argument("--runs", type=int, default=5, help="runs per kind that switches (default 5)")
    ap.add_argument("--calm-runs", type=int, default=2,
                    help="runs per kind that must not switch (agent, partition, api; default 2: each watches 20-65 s)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox up at the end")
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if os.geteuid() != 0 or any(k not in KINDS for k in kinds) or min(args.runs, args.calm_runs) < 1:
        print(f"usage: root; --kinds from {', '.join(KINDS)}; --runs and --calm-runs ≥ 1", file=sys.stderr)
        return 2
    a, b = args.regions
    existing = Sandbox.existing()
    was_up = existing is not None and LINK in existing.links()
    if not was_up:
        print(f"bringing up {a} and {b} with --ha in the sandbox ...", flush=True)
        done = linker("up", a, b, "--sandbox", "--ha", "--yes", "--json")
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
    sandbox = Sandbox.existing()
    assert sandbox is not None
    results: list[dict[str, Any]] = []
    last_change = {a: 0.0, b: 0.0}
    failed = False
    with tempfile.TemporaryDirectory(prefix="linker-failover-") as tmp:
        try:
            for kind in kinds:
                for n in range(args.runs if kind in SWITCHING else args.calm_runs):
                    site, other = (a, b) if n % 2 == 0 else (b, a)
                    wait = last_change[site] + HYSTERESIS - time.time()
                    if wait > 0:
                        time.sleep(wait)
                    since = time.time() - 150.0
                    chaos.wait_for(f"{site}'s two gateways to be ready",
                                   lambda s=site, t=since: chaos.warm_pair(sandbox, LINK, s, t), 300, 1.0)
                    result = run_once(sandbox, kind, site, other, Path(tmp), (a, b))
                    if result["switches"]:
                        last_change[site] = time.time()
                    results.append(result)
                    print(json.dumps(result), flush=True)
                    if kind == "stop":  # the stopped instance was started again: wait for it to be warm
                        started = time.time()
                        chaos.wait_for(f"{site}'s restarted gateway",
                                       lambda s=site, t=started: chaos.warm_pair(sandbox, LINK, s, t), 300, 1.0)
        except (LinkerError, AssertionError) as exc:
            print(f"run failed: {exc}", file=sys.stderr)
            failed = True
        finally:
            if not was_up and not args.keep:
                linker("down", "--sandbox", "--yes")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                         "results": results}, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
