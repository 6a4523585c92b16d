"""Handshake flood (issue 14): a bounded flood of valid-MAC1 initiations from 64 addresses while the real peer
restarts and must handshake again. What must hold: the daemon turns its cookie mechanism on, the real peer's
traffic resumes while the flood still runs (its cookie round trip and one retry: the protocol's retry time), no
source gets cookie replies faster than the rate limit allows, and the daemon's memory stays flat. The figures are
printed; bench/flood.py compares them with wireguard-go's under the same flood."""

from __future__ import annotations

from pathlib import Path

import pytest

from linker.wg.constants import RATELIMIT_BURST, RATELIMIT_PACKETS_PER_SECOND
from tests.netns.floodlab import as_json, run_flood
from tests.netns.netlab import Lab

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]

RATE = 30_000  # initiations per second: tens of thousands, bounded in time
SECONDS = 14.0
RESTART_AT = 2.0


def test_a_real_peer_handshakes_through_a_flood(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Lab("fl", tmp_path) as lab:
        result = run_flood(lab, "linker", RATE, SECONDS, RESTART_AT)
    with capsys.disabled():
        print(f"\nhandshake flood against linker: {as_json(result)}")
    assert result.flood.get("sent", 0) > RATE * SECONDS / 4, f"the flood did not run: {result.flood}"
    assert result.counters.get("tx_cookie_reply", 0) > 0, "under load the daemon answers with cookies"
    assert result.resumed_after is not None and result.flood_left > 0, \
        f"the real peer's traffic resumed only after the flood ({result})"
    allowed = RATELIMIT_BURST + RATELIMIT_PACKETS_PER_SECOND * (result.flood["seconds"] + 1)
    assert result.flood["max_replies_per_source"] <= allowed, "a source got cookie replies faster than the limit"
    assert result.rss_growth_mb < 50, f"the daemon's memory grew by {result.rss_growth_mb} MB under the flood"
