"""The report: per-metric median and range over rounds, ratios to the anchors, a text table, JSON, a chart.

Two kinds of ratio. The ratio of medians compares each system's median over all rounds with the anchor's. The
paired ratio (``PAIRED``: the idle RTT) divides a system's figure by the anchor's from the same round, measured a
minute or less apart, then takes the median of those: this machine's idle latency drifts by tens of percent from
minute to minute (docs/PERFORMANCE.md), and pairing within a round keeps that drift out of the comparison.

Everything here is pure over the results dictionary except ``write_json`` and ``chart``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANCHORS = ("wireguard-go", "openvpn-aes", "python-floor")
PAIRED = ("rtt_avg_ms",)  # the figures also compared round by round (``paired``)


@dataclass(frozen=True)
class Metric:
    """One figure of the table: its key in a round's results, how to show it, and which way is better."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    fmt: str

    def show(self, value: float) -> str:
        return format(value, self.fmt)


def metrics(streams: tuple[int, ...]) -> list[Metric]:
    """The table's columns, in order, for the stream counts measured."""
    tcp = [Metric(f"tcp{n}_mbps", f"TCP {n} stream{'s' if n > 1 else ''}", "Mbit/s", True, ",.0f") for n in streams]
    # the daemons' CPU per byte first: on a small machine where senders, receivers and daemons share the cores it
    # is the figure that carries over to a gateway with cores of its own
    return [
        Metric("cpu_s_per_gb", "daemon CPU", "s/GB", False, ".1f"),
        *tcp,
        Metric("rtt_avg_ms", "RTT avg", "ms", False, ".3f"),
        Metric("rtt_p99_ms", "RTT p99", "ms", False, ".3f"),
        Metric("loaded_p50_ms", "RTT under load p50", "ms", False, ".2f"),
        Metric("loaded_p99_ms", "RTT under load p99", "ms", False, ".2f"),
        Metric("cpu_us_per_ping", "CPU per ping", "µs", False, ",.0f"),
    ]


def summarize(rounds: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, float] | None]:
    """Median, min, max and count of each key over the rounds that have it (failed rounds have none)."""
    out: dict[str, dict[str, float] | None] = {}
    for key in keys:
        values = [r[key] for r in rounds if r.get(key) is not None]
        out[key] = ({"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}
                    if values else None)
    return out


def ratios(summary: dict[str, Any], anchor: dict[str, Any], keys: list[str]) -> dict[str, float | None]:
    """This system's median over the anchor's, per key (None where either is missing)."""
    out: dict[str, float | None] = {}
    for key in keys:
        mine, theirs = summary.get(key), anchor.get(key)
        out[key] = mine["median"] / theirs["median"] if mine and theirs and theirs["median"] else None
    return out


def paired(rounds: list[dict[str, Any]], anchor_rounds: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """This system's ``key`` over the anchor's in the same round, for every round where both have it: the ratios
    in round order, their median, min, max and count (None when no round has both)."""
    values = [mine[key] / theirs[key] for mine, theirs in zip(rounds, anchor_rounds, strict=False)
              if mine.get(key) is not None and theirs.get(key)]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "rounds": values}


def add_summaries(results: dict[str, Any]) -> None:
    """Fill each system's ``summary``, ``ratios`` and ``paired`` ratios (to every anchor measured) in place."""
    keys = [m.key for m in metrics(tuple(results["settings"]["streams"]))]
    systems = results["systems"]
    for entry in systems.values():
        entry["summary"] = summarize([r for r in entry["rounds"] if "error" not in r], keys)
    anchors = [a for a in ANCHORS if a in systems and systems[a].get("summary")]
    for entry in systems.values():
        entry["ratios"] = {a: ratios(entry["summary"], systems[a]["summary"], keys) for a in anchors}
        entry["paired"] = {a: {k: paired(entry["rounds"], systems[a]["rounds"], k) for k in PAIRED}
                           for a in anchors if systems[a] is not entry}


def _cell(metric: Metric, s: dict[str, float] | None) -> str:
    if not s:
        return "-"
    if s["n"] == 1:
        return metric.show(s["median"])
    return f"{metric.show(s['median'])} [{metric.show(s['min'])}-{metric.show(s['max'])}]"


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    """Align columns: the first to the left, the figures to the right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return [line(header), *map(line, rows)]


def table(results: dict[str, Any]) -> str:
    """The figures (median [min-max] over rounds) and each system's ratios to the anchors, as plain text."""
    ms = metrics(tuple(results["settings"]["streams"]))
    systems = results["systems"]
    header = ["system", *(f"{m.label} {m.unit}" for m in ms)]
    rows, notes = [], []
    for entry in systems.values():
        if not entry["available"]:
            notes.append(f"{entry['label']}: not available ({entry['reason']})")
            continue
        rows.append([entry["label"], *(_cell(m, entry["summary"].get(m.key)) for m in ms)])
        failed = [r["error"] for r in entry["rounds"] if "error" in r]
        if failed:
            notes.append(f"{entry['label']}: {len(failed)} of {len(entry['rounds'])} rounds failed: {failed[0]}")
    lines = [f"median [min-max] over {results['settings']['rounds']} round(s), "
             f"{results['settings']['duration']:g} s per iperf3 run", *_grid(header, rows)]
    for anchor in ANCHORS:
        if anchor not in systems or not systems[anchor].get("summary") or not any(
                systems[anchor]["summary"].values()):
            continue
        lines += ["", f"ratio to {systems[anchor]['label']} (medians; throughput: higher is better, "
                      "RTT and CPU: lower is better)"]
        rrows = [[e["label"], *(("-" if (v := e["ratios"][anchor].get(m.key)) is None else f"{v:.2f}x") for m in ms)]
                 for e in systems.values() if e["available"] and anchor in e.get("ratios", {})]
        lines += _grid(["system", *(m.label for m in ms)], rrows)
    lines += _paired_lines(results, ms)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _paired_lines(results: dict[str, Any], ms: list[Metric]) -> list[str]:
    """The paired ratios (median [min-max] over rounds) of every system to every anchor, a block per figure."""
    systems = results["systems"]

    def pair(entry: dict[str, Any], anchor: str, key: str) -> dict[str, Any] | None:
        return (entry["paired"].get(anchor) or {}).get(key)  # None for the anchor itself, or with no round pair

    lines: list[str] = []
    for metric in (m for m in ms if m.key in PAIRED):
        anchors = [a for a in ANCHORS if any(pair(e, a, metric.key) for e in systems.values())]
        if not anchors:
            continue
        rows = []
        for e in systems.values():
            cells = []
            for a in anchors:
                p = pair(e, a, metric.key)
                cells.append("-" if not p else f"{p['median']:.2f}x [{p['min']:.2f}-{p['max']:.2f}]")
            if any(c != "-" for c in cells):
                rows.append([e["label"], *cells])
        lines += ["", f"{metric.label}, paired: each round's figure over the anchor's in the same round "
                      "(median [min-max] over rounds)",
                  *_grid(["system", *(f"to {systems[a]['label']}" for a in anchors)], rows)]
    return lines


def write_json(results: dict[str, Any], path: Path) -> None:
    """Write the results document (indented, keys in insertion order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def chart(results: dict[str, Any], path: Path) -> None:
    """Draw a PNG: a bar (median) with its min-max range per system for each metric.

    The raw veth is left out of the throughput panels (it is an order of magnitude above any tunnel and would
    flatten them); its figure goes in the panel's title instead. Raises ImportError without matplotlib.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on a gateway or in CI
    import matplotlib.pyplot as plt

    ms = metrics(tuple(results["settings"]["streams"]))
    measured = [e for e in results["systems"].values() if e["available"] and e.get("summary")]
    fig, axes = plt.subplots(1, len(ms), figsize=(3.2 * len(ms), 4.2))
    for ax, m in zip(axes, ms, strict=True):
        shown = [e for e in measured if e["summary"].get(m.key) and not (e["name"] == "raw" and m.unit == "Mbit/s")]
        title = f"{m.label} ({m.unit})\n{'higher' if m.higher_is_better else 'lower'} is better"
        raw = results["systems"].get("raw", {}).get("summary", {}).get(m.key)
        if raw and m.unit == "Mbit/s":
            title += f"; raw veth {m.show(raw['median'])}"
        medians = [e["summary"][m.key]["median"] for e in shown]
        low = [md - e["summary"][m.key]["min"] for md, e in zip(medians, shown, strict=True)]
        high = [e["summary"][m.key]["max"] - md for md, e in zip(medians, shown, strict=True)]
        ax.bar(range(len(shown)), medians, yerr=[low, high], capsize=4,
               color=["#d62728" if e["name"] == "linker" else "#7f7f7f" for e in shown])
        ax.set_xticks(range(len(shown)), [e["label"].replace("OpenVPN ", "OpenVPN\n") for e in shown],
                      rotation=45, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"linker benchmark {results['started']} ({results['host']['cpus']} CPUs; "
                 f"median, bars min-max over {results['settings']['rounds']} rounds)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
