"""A short, bounded coverage-guided run of every fuzz target (the long runs are on demand: tests/fuzz/run.py).

Each target runs in its own process (libFuzzer owns the process) from the checked-in seed corpus, for a bounded
number of inputs and time; a failure prints libFuzzer's report with the failing input."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.fuzz.targets import TARGETS

RUNS = 20_000
MAX_SECONDS = 45


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (pip install atheris)")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_target_survives_a_short_run(target: str, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.fuzz.run", target, f"-runs={RUNS}",
                           f"-max_total_time={MAX_SECONDS}", f"-artifact_prefix={tmp_path}/"],
                          capture_output=True, text=True, timeout=MAX_SECONDS * 4,
                          env={**os.environ, "LINKER_FUZZ_SCRATCH": str(tmp_path / "corpus")})
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-4000:]
    runs = re.search(r"Done (\d+) runs in (\d+) second", report)
    assert runs, report[-2000:]
    with capsys.disabled():
        print(f"\nfuzz {target}: {runs.group(1)} inputs in {runs.group(2)} s, no failure")
