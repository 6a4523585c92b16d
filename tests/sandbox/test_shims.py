"""The hosts' stand-ins and cloud-init, without namespaces: a real venv gets the controller's real wheel."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest

from linker.control.package import build
from linker.sandbox import cloudinit, shims
from linker.sandbox.userdata import CloudConfig, WriteFile


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("host") / "opt-linker"
    assert shims.main(["python3.11", "-m", "venv", str(path)]) == 0
    return path


def test_venv_sees_the_controllers_dependencies_and_has_the_sandbox_pip(venv: Path) -> None:
    pth = shims.venv_site_packages(venv) / "_linker_sandbox_deps.pth"
    assert pth.exists() and all(Path(p).is_dir() for p in pth.read_text().split())
    assert "-m linker.sandbox.shims pip" in (venv / "bin" / "pip").read_text()
    done = subprocess.run([venv / "bin" / "python", "-c", "import boto3, pyroute2, cryptography"], cwd="/",
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_controllers_wheel_installs_and_runs_from_the_venv(venv: Path, tmp_path: Path) -> None:
    package = build()
    wheel = tmp_path / package.filename
    wheel.write_bytes(package.data)
    assert shims.main(["pip", "--venv", str(venv), "install", "--no-input", str(wheel)]) == 0
    assert (venv / "bin" / "linker").stat().st_mode & 0o111
    done = subprocess.run([venv / "bin" / "python", "-P", "-c", "import linker; print(linker.__file__)"], cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().startswith(str(shims.venv_site_packages(venv)))  # the wheel's code, not a checkout
    version = subprocess.run([venv / "bin" / "linker", "--version"], cwd="/", capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and "0.1.0" in version.stdout


def test_a_wheel_whose_file_does_not_match_its_record_is_refused(venv: Path, tmp_path: Path) -> None:
    source = zipfile.ZipFile(io.BytesIO(build().data))
    bad = tmp_path / "linker-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            out.writestr(item, data + b"\n# tampered\n" if item.filename == "linker/cli/__init__.py" else data)
    with pytest.raises(shims.ShimError, match="does not match its RECORD"):
        shims.install_wheel(venv, bad)
    assert shims.main(["pip", "--venv", str(venv), "install", "requests"]) == 1  # no package index


def test_console_scripts_and_unknown_commands() -> None:
    assert shims.console_scripts("[console_scripts]\nlinker = linker.cli:main\n[x]\ny = z:w\n") == {
        "linker": "linker.cli:main"}
    assert shims.main(["aws", "ec2", "describe-instances"]) == 1
    assert shims.main(["systemctl", "mask", "x"]) == 1
    assert shims.main(["dnf", "install", "-y", "nftables"]) == 0


def test_cloud_init_writes_files_runs_every_command_and_reports_failures(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "thing.conf"
    config = CloudConfig(
        write_files=(WriteFile(str(target), b"a=1\n", 0o600),),
        runcmd=(("sh", "-c", f"test -f {target}"), ("false",), ("sh", "-c", f"echo ran > {tmp_path / 'after'}")),
        unsupported=("bootcmd",))
    with (tmp_path / "console").open("w+") as out:  # a real file: the commands write to it directly
        assert cloudinit.run(config, out) == 1  # one command failed ...
        out.seek(0)
        text = out.read()
    assert (tmp_path / "after").read_text() == "ran\n"  # ... and the next ones still ran, as cloud-init does
    assert target.read_bytes() == b"a=1\n" and target.stat().st_mode & 0o777 == 0o600
    assert "runcmd[1]: exit 1" in text and "'bootcmd' is not emulated" in text and "1 failure(s)" in text
