"""Every two-device test runs through the general packet paths, and through the fast paths that the daemon's loop
takes for a lone packet (``Device.seal_one`` and ``open_one``, falling back to the general ones when they
decline); and with time passing in small ticks, and from one timer deadline to the next as the daemon's loop
sleeps (``Device.next_deadline``). The protocol's behaviour must not tell them apart."""

from __future__ import annotations

import pytest

from tests.pair import harness


@pytest.fixture(autouse=True, params=[False, True], ids=["general", "fast"])
def packet_paths(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(harness, "FAST_PATHS", request.param)
    return request.param


@pytest.fixture(autouse=True, params=[False, True], ids=["steps", "deadlines"])
def timer_wakeups(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    monkeypatch.setattr(harness, "DEADLINES", request.param)
    return request.param
