"""The benchmark's report over made-up rounds: no namespaces, no daemons (bench/harness/report.py)."""

from __future__ import annotations

import pytest

from bench.harness import report


def results(linker: list[float | None], floor: list[float | None]) -> dict:
    def entry(name: str, label: str, rtts: list[float | None]) -> dict:
        rounds = [{"error": "setup failed"} if r is None else {"rtt_avg_ms": r, "rtt_p99_ms": 2 * r} for r in rtts]
        return {"name": name, "label": label, "available": True, "reason": None, "commands": [], "rounds": rounds}

    return {"settings": {"rounds": len(linker), "duration": 8, "streams": [], "pings": 200},
            "systems": {"linker": entry("linker", "linker", linker),
                        "python-floor": entry("python-floor", "Python floor", floor)}}


def test_paired_ratios_divide_within_each_round_and_skip_rounds_that_failed() -> None:
    # the machine drifts: both systems slow down together in the last rounds; linker is 1.2x in every round
    res = results([0.24, 0.36, None, 0.48, 0.60], [0.20, 0.30, 0.35, 0.40, 0.50])
    report.add_summaries(res)
    p = res["systems"]["linker"]["paired"]["python-floor"]["rtt_avg_ms"]
    assert p["n"] == 4 and p["rounds"] == pytest.approx([1.2] * 4)
    assert p["median"] == pytest.approx(1.2) and p["min"] == pytest.approx(1.2) and p["max"] == pytest.approx(1.2)
    # the ratio of medians sees the drift: linker's median comes from other rounds than the floor's
    assert res["systems"]["linker"]["ratios"]["python-floor"]["rtt_avg_ms"] == pytest.approx(0.42 / 0.35)
    assert "python-floor" not in res["systems"]["python-floor"]["paired"]  # no system is paired with itself
    text = report.table(res)
    assert "RTT avg, paired" in text and "1.20x [1.20-1.20]" in text


def test_no_paired_block_without_an_anchor_round_to_pair_with() -> None:
    res = results([0.3, 0.4], [None, None])
    report.add_summaries(res)
    assert "paired" not in report.table(res)
    assert res["systems"]["linker"]["ratios"]["python-floor"]["rtt_avg_ms"] is None
    assert res["systems"]["linker"]["paired"]["python-floor"]["rtt_avg_ms"] is None
