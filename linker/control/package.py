"""The controller's own linker, as a wheel, so every gateway runs exactly the controller's version.

linker is not on a public package index: ``up`` puts this wheel in the site's S3 bucket and the user-data installs
it with the instance role. The wheel is built from the running package's files, byte for byte reproducible
(sorted entries, fixed timestamps), so its hash (part of the instance's configuration) changes only when the code
does.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import linker

_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Package:
    """A wheel: its file name, bytes and sha256 (hex)."""

    filename: str
    data: bytes
    sha256: str

    @property
    def key(self) -> str:
        """Its S3 key: content-addressed, so a key that exists holds exactly these bytes."""
        return f"wheels/{self.sha256[:16]}/{self.filename}"


def _requirements() -> list[str]:
    try:
        requires = importlib.metadata.distribution("linker").requires or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    return [r for r in requires if "extra ==" not in r]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


@lru_cache(maxsize=1)
def build() -> Package:
    """The wheel of the running linker (pure Python, any platform)."""
    root = Path(linker.__file__).resolve().parent
    version = linker.__version__
    info = f"linker-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files.append((f"linker/{path.relative_to(root).as_posix()}", path.read_bytes()))
    metadata = "\n".join(["Metadata-Version: 2.1", "Name: linker", f"Version: {version}",
                          "Requires-Python: >=3.11", *(f"Requires-Dist: {r}" for r in _requirements())]) + "\n"
    files += [
        (f"{info}/METADATA", metadata.encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: linker\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/entry_points.txt", b"[console_scripts]\nlinker = linker.cli:main\n"),
    ]
    record = "\n".join([*(_record_line(n, d) for n, d in files), f"{info}/RECORD,,"]) + "\n"
    files.append((f"{info}/RECORD", record.encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files:
            entry = zipfile.ZipInfo(name, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    data = buffer.getvalue()
    return Package(f"linker-{version}-py3-none-any.whl", data, hashlib.sha256(data).hexdigest())


def write(directory: Path) -> Path:
    """Write the wheel of the running linker into ``directory`` (for the Terraform module's ``wheel``)."""
    wheel = build()
    path = Path(directory) / wheel.filename
    path.write_bytes(wheel.data)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m linker.control.package DIR``: write the controller's wheel into DIR; print its path and SHA-256."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m linker.control.package DIR (an existing directory)", file=sys.stderr)
        return 2
    path = write(Path(args[0]))
    print(f"{path}\nsha256 {build().sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
