"""Handshake flood benchmark: linker's daemon and wireguard-go (the anchor) under the same flood.

    sudo .venv/bin/python -m bench.flood [--rate 0] [--seconds 12] [--rounds 3]

Per round and victim (tests/netns/floodlab.py): 64 source addresses send valid-MAC1 initiations at --rate per
second (0: as fast as the flooder can: sendmmsg batches, one core) for --seconds; 2 s in, the real peer (wireguard-go)
restarts and must handshake again. Printed: initiations sent, cookie replies (total and the most one source got),
seconds from the restart to the peer's first answered ping (and whether the flood was still on), the victim's
CPU seconds and peak RSS. Medians over the rounds, then linker / wireguard-go. Root; namespaces only, TEST-NET.
"""

from __future__ import annotations

import argparse
import json
import statistics

from tests.netns.floodlab import run_flood
from tests.netns.netlab import Lab

VICTIMS = ("linker", "wireguard-go")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=0, help="initiations per second; 0: as fast as possible")
    ap.add_argument("--seconds", type=float, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256, help="initiations per sendmmsg (the flooder's speed)")
    ap.add_argument("--json", action="store_true", help="one JSON line per run instead of the table")
    args = ap.parse_args()
    runs: dict[str, list] = {v: [] for v in VICTIMS}
    for _ in range(args.rounds):
        for victim in VICTIMS:
            with Lab("bf") as lab:
                result = run_flood(lab, victim, args.rate, args.seconds, restart_at=2.0, batch=args.batch)
            runs[victim].append(result)
            if args.json:
                print(json.dumps(result.__dict__, sort_keys=True))
    if args.json:
        return

    def med(victim: str, get) -> float:
        values = [get(r) for r in runs[victim]]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else float("nan")

    rows = [("initiations sent", lambda r: r.flood.get("sent")), ("sent per second", lambda r: r.flood.get("rate")),
            ("cookie replies", lambda r: r.flood.get("cookie_replies")),
            ("most replies to one source", lambda r: r.flood.get("max_replies_per_source")),
            ("peer resumed after restart, s", lambda r: r.resumed_after if r.resumed_after is not None else 99.0),
            ("... flood left then, s", lambda r: r.flood_left),
            ("victim CPU, s", lambda r: r.cpu_seconds), ("victim peak RSS, MB", lambda r: r.peak_rss_mb),
            ("victim RSS growth, MB", lambda r: r.rss_growth_mb)]
    print(f"handshake flood, {args.rounds} round(s) of {args.seconds:.0f} s, rate "
          f"{'max' if not args.rate else int(args.rate)}/s, 64 sources; medians")
    print(f"{'':32} {'linker':>12} {'wireguard-go':>12} {'ratio':>7}")
    for name, get in rows:
        mine, theirs = med("linker", get), med("wireguard-go", get)
        ratio = f"{mine / theirs:.2f}" if theirs else "-"
        print(f"{name:32} {mine:12.2f} {theirs:12.2f} {ratio:>7}")


if __name__ == "__main__":
    main()
