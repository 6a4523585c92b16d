"""Fresh virtual environments outside the checkout, made from the machine's interpreter (not the test venv)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PIP_CONFIG_FILE": "/dev/null",
             "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def make_venv(path: Path, pip: bool = True) -> Path:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", *([] if pip else ["--without-pip"]), str(path)], check=True, timeout=300,
                   cwd="/")
    return path


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


@pytest.fixture
def run_in() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(venv: Path, *args: str, env: dict[str, str] | None = None, cwd: str = "/",
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], env={**CLEAN_ENV, **(env or {})}, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)
    return run
