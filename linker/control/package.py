"""What a gateway installs: the wheelhouse of the controller's own linker, so every gateway runs exactly its code.

linker is not on a public package index, and a gateway reaches none: ``up`` puts one tar in the site's S3 bucket
holding the gateway wheel (linker.control.gateway_wheel: only what a gateway runs, built by setuptools,
reproducible) and pinned wheels of its dependencies for the gateway's Python and architecture
(linker.control.wheelhouse). The user-data fetches it with the instance role, checks its SHA-256 and installs
``linker-gateway`` from it with ``pip install --no-index``. Its hash is part of the instance's configuration and
changes only when a wheel in it does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import linker
from linker.control import gateway_wheel, wheelhouse
from linker.control.gateway_wheel import DIST_NAME, PackageError

__all__ = ["DIST_NAME", "Package", "PackageError", "build", "main", "write"]


@dataclass(frozen=True)
class Package:
    """An artifact the gateway installs from the site's bucket: its file name, bytes and sha256 (hex)."""

    filename: str
    data: bytes
    sha256: str

    @property
    def key(self) -> str:
        """Its S3 key: content-addressed, so a key that exists holds exactly these bytes."""
        return f"wheels/{self.sha256[:16]}/{self.filename}"


@lru_cache(maxsize=4)
def build(arch: str = "x86_64") -> Package:
    """The wheelhouse of the running linker for a gateway of ``arch`` (x86_64 or arm64). Builds the gateway wheel
    and downloads the dependency wheels on the first call for these sources and pins (then from the cache).
    Raises PackageError."""
    target = wheelhouse.Target(arch)
    wheel = gateway_wheel.gateway_wheel()
    deps = wheelhouse.dependency_wheels(target, gateway_wheel.gateway_sources().requirements)
    data = wheelhouse.bundle([wheel, *deps])
    name = f"linker-{linker.__version__}-gateway-{target.abi}-{arch}.tar"
    return Package(name, data, hashlib.sha256(data).hexdigest())


def write(directory: Path, arch: str = "x86_64") -> Path:
    """Write the wheelhouse into ``directory`` (for the Terraform module's ``wheel``); returns its path."""
    package = build(arch)
    path = Path(directory) / package.filename
    path.write_bytes(package.data)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m linker.control.package DIR [ARCH]``: write the gateway wheelhouse into DIR; print its path and
    SHA-256."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2) or not Path(args[0]).is_dir() or args[1:] not in ([], ["x86_64"], ["arm64"]):
        print("usage: python -m linker.control.package DIR [x86_64|arm64] (DIR an existing directory)",
              file=sys.stderr)
        return 2
    try:
        path = write(Path(args[0]), *args[1:])
    except PackageError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"{path}\nsha256 {build(*args[1:]).sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
