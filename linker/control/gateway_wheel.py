"""The gateway's own wheel, ``linker-gateway``: the modules a gateway runs, built by the standard backend.

A gateway runs ``linker gateway run`` (the agent) and ``linker daemon`` (the TUN daemon), nothing of the controller
or the sandbox. The modules it needs are found by following the imports of those commands' modules (and the CLI
that dispatches them) through linker's sources, so a new import comes along by itself and nothing else does. They
are staged into a scratch project that setuptools builds (``pip wheel --no-build-isolation``, no index) with
SOURCE_DATE_EPOCH fixed: two builds of the same sources are byte for byte the same wheel, so its hash (part of the
instance's configuration) changes only when the code does. The third-party distributions those modules import
are the wheel's requirements (linker.control.wheelhouse brings their wheels to the gateway).

Building runs pip in a subprocess and writes only to a scratch directory and the cache (see ``cache_dir``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import linker
from linker.errors import UserError

DIST_NAME = "linker-gateway"
# the subcommands a gateway runs or an operator runs on it; the CLI's lazy table skips the areas not shipped
GATEWAY_COMMANDS = ("gateway", "daemon", "genkey", "pubkey", "genpsk")
# The CLI modules behind GATEWAY_COMMANDS, by name: the controller does not import the CLI above it (the floors,
# ARCHITECTURE.md); tests/package checks these against linker.cli.COMMANDS.
GATEWAY_COMMAND_MODULES = ("linker.cli.daemon", "linker.cli.gateway")
SOURCE_DATE_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can carry
BUILD_TIMEOUT = 300.0


class PackageError(UserError):
    """The gateway's wheel or wheelhouse cannot be made here (no setuptools, pip failed, no index reachable)."""


@dataclass(frozen=True)
class GatewaySources:
    """What the gateway wheel is built from: linker's module files (relative paths) and the distributions
    (requirement strings) those modules import."""

    files: tuple[str, ...]
    requirements: tuple[str, ...]


def _root() -> Path:
    return Path(linker.__file__).resolve().parent


def _module_file(root: Path, name: str) -> Path | None:
    """The file of module ``linker.a.b`` (a.py or a/__init__.py under ``root``), or None."""
    parts = name.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py") if parts else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Every module name ``path`` imports, at any depth (lazy imports in functions count), relative ones resolved."""
    tree = ast.parse(path.read_bytes(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from linker import naming`
    return found


def gateway_roots() -> list[str]:
    """The modules a gateway starts from: the CLI and the modules of the gateway's subcommands."""
    return ["linker.__main__", "linker.cli", *GATEWAY_COMMAND_MODULES]


def gateway_sources(roots: list[str] | None = None) -> GatewaySources:
    """Follow the imports from ``roots`` through linker; raises PackageError when a root is missing."""
    root = _root()
    seen: dict[str, Path] = {}
    third_party: set[str] = set()
    pending = list(roots or gateway_roots())
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = _module_file(root, name)
        if path is None:
            raise PackageError(f"the gateway module {name} has no source under {root}")
        seen[name] = path
        parents = name.split(".")
        pending += [".".join(parents[:i]) for i in range(1, len(parents))]  # a module's packages come with it
        for imported in _imports(path, name):
            top = imported.split(".")[0]
            if top == "linker":
                if _module_file(root, imported) is not None:
                    pending.append(imported)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    files = sorted({p.relative_to(root).as_posix() for p in seen.values()} | {"py.typed"})
    return GatewaySources(tuple(files), _requirements(third_party))


def _requirements(imported: set[str]) -> tuple[str, ...]:
    """The distributions providing ``imported`` top-level modules, as linker itself requires them."""
    providers = importlib.metadata.packages_distributions()
    dists: set[str] = set()
    for top in imported:
        names = providers.get(top)
        if not names:
            raise PackageError(f"the gateway imports {top}, which no installed distribution provides")
        dists.update(_canonical(n) for n in names)
    own = {}
    for req in importlib.metadata.requires("linker") or []:
        if "extra ==" not in req:
            own[_canonical(re.match(r"[A-Za-z0-9._-]+", req).group(0))] = req  # type: ignore[union-attr]
    chosen = dists & set(own)
    missing = sorted(dists - _closure(chosen))  # botocore, say: imported directly, required through boto3
    if missing:
        raise PackageError(f"the gateway imports {', '.join(missing)}, which linker does not declare as dependencies")
    return tuple(sorted(own[d] for d in chosen))


def _closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require, as installed here (extras left out)."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        pending += [_canonical(re.match(r"[A-Za-z0-9._-]+", r).group(0))  # type: ignore[union-attr]
                    for r in requires if "extra ==" not in r]
    return seen


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject(sources: GatewaySources) -> str:
    packages = sorted({"linker." + f.rpartition("/")[0].replace("/", ".") if "/" in f else "linker"
                       for f in sources.files})
    quoted = ", ".join(f'"{p}"' for p in packages)
    deps = "".join(f'  "{r}",\n' for r in sources.requirements)
    return (
        '[build-system]\nrequires = ["setuptools>=70.1"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{DIST_NAME}"\nversion = "{linker.__version__}"\n'
        'description = "What a linker gateway runs: the agent, the TUN daemon and the WireGuard-protocol core"\n'
        f'requires-python = ">=3.11"\ndependencies = [\n{deps}]\n\n'
        '[project.scripts]\nlinker = "linker.cli:main"\n\n'
        f'[tool.setuptools]\npackages = [{quoted}]\ninclude-package-data = false\n\n'
        '[tool.setuptools.package-data]\nlinker = ["py.typed"]\n'
    )


def stage(directory: Path, sources: GatewaySources) -> None:
    """Write the gateway's source tree into ``directory``: the modules and a pyproject.toml naming them."""
    root = _root()
    for rel in sources.files:
        target = directory / "linker" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((root / rel).read_bytes())
        target.chmod(0o644)  # the wheel records modes: the checkout's must not leak in
    (directory / "pyproject.toml").write_text(_pyproject(sources))


def fingerprint(sources: GatewaySources) -> str:
    """A hash of everything the wheel is built from (the build cache's key)."""
    digest = hashlib.sha256(_pyproject(sources).encode())
    for rel in sources.files:
        digest.update(f"\0{rel}\0".encode() + (_root() / rel).read_bytes())
    return digest.hexdigest()


def build_wheel(out: Path, sources: GatewaySources | None = None) -> Path:
    """Build the gateway wheel into ``out`` with setuptools; returns its path. Raises PackageError."""
    sources = sources or gateway_sources()
    with tempfile.TemporaryDirectory(prefix="linker-gateway-src-") as scratch:
        tree = Path(scratch, "src")
        tree.mkdir()
        stage(tree, sources)
        built = Path(scratch, "dist")
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH), "PIP_CONFIG_FILE": os.devnull,
               "PYTHONHASHSEED": "0"}
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
               "--disable-pip-version-check", "--no-cache-dir", "-q", "-w", str(built), str(tree)]
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PackageError(f"cannot build the gateway wheel: {exc}") from None
        wheels = sorted(built.glob("*.whl")) if done.returncode == 0 else []
        if len(wheels) != 1:
            raise PackageError(f"building the gateway wheel failed:\n{done.stderr.strip() or done.stdout.strip()}",
                               fix="the controller needs pip and setuptools>=70.1: pip install 'linker'")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], out / wheels[0].name))


def cache_dir() -> Path:
    """Where built and downloaded gateway artifacts are kept ($LINKER_CACHE, else the XDG cache)."""
    explicit = os.environ.get("LINKER_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "linker"


@lru_cache(maxsize=4)
def gateway_wheel() -> Path:
    """The gateway wheel of the running linker, built once per source fingerprint and kept in the cache."""
    sources = gateway_sources()
    slot = cache_dir() / "gateway" / fingerprint(sources)[:32]
    found = sorted(slot.glob("*.whl")) if slot.is_dir() else []
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(prefix="gateway-", dir=_ensure(cache_dir() / "gateway")) as scratch:
        wheel = build_wheel(Path(scratch), sources)
        try:
            Path(scratch).rename(slot)  # atomic: a concurrent build of the same sources made the same bytes
        except OSError:
            if not slot.is_dir():
                raise
        else:
            Path(scratch).mkdir()  # for TemporaryDirectory's cleanup
    return slot / wheel.name


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
