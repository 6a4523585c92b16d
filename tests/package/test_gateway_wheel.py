"""The gateway's wheel and wheelhouse: only what a gateway runs, reproducible, installable with pip --no-index."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from linker.control import gateway_wheel, package, wheelhouse
from tests.package.conftest import make_venv

AREAS_NOT_SHIPPED = ("control/", "sandbox/", "spec.py", "cli/link.py", "cli/local.py", "cli/sandbox.py")


def test_the_gateway_ships_what_it_runs_and_nothing_of_the_controller_or_the_sandbox() -> None:
    sources = gateway_wheel.gateway_sources()
    files = set(sources.files)
    assert {"cli/__init__.py", "cli/gateway.py", "cli/daemon.py", "cli/output.py", "errors.py", "naming.py", "log.py",
            "contract.py", "wg/noise.py", "dataplane/daemon.py", "gateway/agent.py"} <= files
    assert not [f for f in files if f.startswith(AREAS_NOT_SHIPPED)]
    names = {r.split(">")[0].split("=")[0] for r in sources.requirements}
    assert {"boto3", "cryptography", "pyroute2", "click"} <= names and "jinja2" not in names


def test_two_builds_of_the_same_sources_are_byte_identical(tmp_path: Path) -> None:
    first = gateway_wheel.build_wheel(tmp_path / "one")
    second = gateway_wheel.build_wheel(tmp_path / "two")
    assert first.name == "linker_gateway-0.1.0-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as wheel:
        assert {i.date_time for i in wheel.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        entry_points = wheel.read("linker_gateway-0.1.0.dist-info/entry_points.txt").decode()
    assert "linker = linker.cli:main" in entry_points
    assert package.build().data == package.build.__wrapped__().data  # the content hash plan uses is stable


def test_the_wheelhouse_tar_is_flat_and_fixed() -> None:
    built = package.build()
    assert built.filename == "linker-0.1.0-gateway-cp311-x86_64.tar"
    with tarfile.open(fileobj=io.BytesIO(built.data)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and all("/" not in n and n.endswith(".whl") for n in names)
    assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(gateway_wheel.SOURCE_DATE_EPOCH, 0, 0, 0o644)}
    assert any(n.startswith("linker_gateway-") for n in names) and any(n.startswith("cryptography-") for n in names)


def test_platform_tags_follow_the_gateway_glibc_and_architecture() -> None:
    tags = wheelhouse.Target("arm64").platforms()
    assert tags[0] == "manylinux_2_34_aarch64" and "manylinux2014_aarch64" in tags
    with pytest.raises(package.PackageError):
        wheelhouse.Target("riscv64").platforms()


def test_the_gateway_installs_from_its_wheelhouse_alone_and_runs_its_commands(
        tmp_path: Path, run_in: Callable[..., object]) -> None:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    tarfile.open(fileobj=io.BytesIO(package.build().data)).extractall(house, filter="data")
    venv = make_venv(tmp_path / "opt-linker")
    done = run_in(venv, "pip", "install", "--no-index", "--no-cache-dir", "--find-links", str(house),
                  "linker-gateway")
    assert done.returncode == 0, done.stdout + done.stderr
    listing = run_in(venv, "linker", "--help")
    assert listing.returncode == 0, listing.stderr
    for shipped in ("gateway", "daemon", "genkey"):
        assert shipped in listing.stdout
    for absent in ("plan", "sandbox", "iam-policy"):
        assert f"  {absent} " not in listing.stdout  # the lazy table skips the areas not shipped
    assert run_in(venv, "linker", "gateway", "--help").returncode == 0
    assert run_in(venv, "linker", "daemon", "--help").returncode == 0
    key = run_in(venv, "linker", "genkey")
    assert key.returncode == 0 and len(key.stdout.strip()) == 44
    imports = run_in(venv, "python", "-c", "import linker.gateway.agent, linker.dataplane.daemon, linker.wg.device")
    assert imports.returncode == 0, imports.stderr
    for missing in ("linker.control", "linker.sandbox", "jinja2"):
        assert run_in(venv, "python", "-c", f"import {missing}").returncode != 0


def test_the_gateway_command_modules_are_those_the_cli_names() -> None:
    from linker import cli

    named = {cli.COMMANDS[c].split(":")[0] for c in gateway_wheel.GATEWAY_COMMANDS}
    assert named == set(gateway_wheel.GATEWAY_COMMAND_MODULES)
