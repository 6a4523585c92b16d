"""The floors of linker/ (ARCHITECTURE.md) hold: import-linter's contract in pyproject.toml, run as CI runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lint_imports() -> str:
    found = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert found, "import-linter is a test dependency: pip install -e '.[test]'"
    return found


def test_no_module_imports_a_floor_above_its_own() -> None:
    done = subprocess.run([lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """The check can fail: a copy of the package in which the protocol core imports the controller is refused."""
    shutil.copytree(REPO / "linker", tmp_path / "linker", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "linker" / "wg" / "constants.py").open("a") as f:
        f.write("\nimport linker.control.plan  # noqa: E402,F401\n")
    done = subprocess.run([lint_imports(), "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "linker.wg is not allowed to import linker.control" in done.stdout
