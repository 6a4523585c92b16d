"""The gateway's wheelhouse: the gateway wheel and pinned wheels of everything it requires, for the gateway's
Python and architecture, in one tar the user-data installs from with ``pip install --no-index``.

A gateway never reaches a package index: what it installs is exactly what the controller put in the site's bucket.
The dependency wheels are pinned to the versions installed where the controller runs (the versions it was tested
with), downloaded once with ``pip download --only-binary=:all:`` for the gateway's platform into the cache
(linker.control.gateway_wheel.cache_dir) and reused from there offline. The tar is byte for byte reproducible
(sorted entries, fixed times and owners), so its hash changes only when a wheel in it does.

Safe to run from several processes at once: each download goes to a scratch directory, renamed into its cache
slot when complete (the first rename wins; the others had the same files).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from linker.control.gateway_wheel import SOURCE_DATE_EPOCH, PackageError, cache_dir

# Amazon Linux 2023 (the AMI the controller picks): glibc 2.34; the user-data installs its python3.11 package
GATEWAY_PYTHON = "3.11"
GATEWAY_GLIBC = (2, 34)
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}
DOWNLOAD_TIMEOUT = 600.0
COMPLETE = "complete"  # the marker of a fully downloaded cache slot: the file names, one a line


@dataclass(frozen=True)
class Target:
    """The interpreter and platform the gateway installs into."""

    arch: str = "x86_64"  # as linker.spec.gateway_architecture names it
    python: str = GATEWAY_PYTHON
    glibc: tuple[int, int] = GATEWAY_GLIBC

    def platforms(self) -> list[str]:
        """Every manylinux tag a glibc of this version runs, newest first (pip does not expand them itself)."""
        machine = MACHINES.get(self.arch)
        if machine is None:
            raise PackageError(f"no wheels for the gateway architecture {self.arch!r}")
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
        return [*tags, f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    if match is None:
        raise PackageError(f"cannot read the requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def pins(requirements: tuple[str, ...]) -> list[str]:
    """``name==version`` for every installed distribution ``requirements`` need, at any depth (extras left out;
    a dependency behind a marker that is not installed here is left for pip to resolve)."""
    pinned: dict[str, str] = {}
    pending = [_name(r) for r in requirements]
    while pending:
        name = pending.pop()
        if name in pinned:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        pinned[name] = dist.version
        pending += [_name(r) for r in dist.requires or [] if "extra ==" not in r]
    return [f"{n}=={v}" for n, v in sorted(pinned.items())]


def _download(target: Target, requirements: tuple[str, ...], constraints: list[str], into: Path) -> None:
    constraint_file = into.parent / f"{into.name}.constraints.txt"
    constraint_file.write_text("".join(f"{c}\n" for c in constraints))
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--disable-pip-version-check", "-q",
           "--python-version", target.python, "--implementation", "cp", "--abi", target.abi, "--abi", "abi3",
           "--abi", "none", *(a for p in target.platforms() for a in ("--platform", p)),
           "-c", str(constraint_file), "-d", str(into), *requirements]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PackageError(f"cannot download the gateway's dependency wheels: {exc}") from None
    finally:
        constraint_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise PackageError(
            "cannot download the gateway's dependency wheels "
            f"({' '.join(constraints)}; Python {target.python}, {target.arch}):\n{done.stderr.strip()[-2000:]}",
            fix="the first `up` for a Python and architecture needs the package index (later ones use the cache)")


def dependency_wheels(target: Target, requirements: tuple[str, ...]) -> list[Path]:
    """The wheels of ``requirements`` and their dependencies for ``target``, pinned to the versions installed here,
    from the cache or downloaded into it. Raises PackageError when they cannot be had."""
    constraints = pins(requirements)
    key = hashlib.sha256("\n".join([target.arch, target.python, repr(target.glibc), *requirements, "--",
                                    *constraints]).encode()).hexdigest()[:32]
    base = cache_dir() / "wheelhouse"
    slot = base / f"{target.abi}-{target.arch}" / key
    marker = slot / COMPLETE
    if not marker.is_file():
        slot.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="download-", dir=slot.parent) as scratch:
            into = Path(scratch, "wheels")
            into.mkdir()
            _download(target, requirements, constraints, into)
            names = sorted(p.name for p in into.glob("*.whl"))
            (into / COMPLETE).write_text("".join(f"{n}\n" for n in names))
            try:
                into.rename(slot)
            except OSError:
                if not marker.is_file():
                    raise
    return [slot / n for n in marker.read_text().split()]


def bundle(wheels: list[Path]) -> bytes:
    """A tar of ``wheels`` (flat, sorted, fixed times, owner root, mode 0644): the same files, the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(wheels, key=lambda p: p.name):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mtime, info.mode = len(data), SOURCE_DATE_EPOCH, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
