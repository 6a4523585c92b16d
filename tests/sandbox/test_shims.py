"""The hosts' stand-ins and cloud-init, without namespaces: a real venv installs the controller's wheelhouse."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from linker.control.package import build
from linker.sandbox import cloudinit, shims
from linker.sandbox.userdata import CloudConfig, WriteFile

SHIM = [sys.executable, "-P", "-m", "linker.sandbox.shims"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("host") / "opt-linker"
    subprocess.run([*SHIM, "python3.11", "-m", "venv", str(path)], check=True, timeout=300, cwd="/")
    return path


def test_python_is_the_machines_own_and_the_venv_has_a_real_pip(venv: Path) -> None:
    done = subprocess.run([venv / "bin" / "pip", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and str(venv) in done.stdout, done.stderr  # pip itself, inside the venv
    done = subprocess.run([venv / "bin" / "python", "-c", "import boto3"], capture_output=True, timeout=60)
    assert done.returncode != 0  # nothing of the controller's: the gateway gets what its wheelhouse holds


def test_the_wheelhouse_installs_with_pip_no_index_and_runs_from_the_venv(venv: Path, tmp_path: Path) -> None:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    tarfile.open(fileobj=io.BytesIO(build().data)).extractall(house, filter="data")
    done = subprocess.run([venv / "bin" / "pip", "install", "--no-index", "--no-cache-dir", "--find-links",
                           str(house), "linker-gateway"], env={"PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([venv / "bin" / "python", "-P", "-c", "import linker; print(linker.__file__)"], cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().startswith(str(venv))  # the wheel's code, not a checkout
    version = subprocess.run([venv / "bin" / "linker", "--version"], cwd="/", capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and "0.1.0" in version.stdout


def test_python_of_another_version_and_unknown_commands_are_refused() -> None:
    assert shims.main(["python3.9", "-m", "venv", "/nonexistent"]) == 1
    assert shims.main(["pip", "install", "x"]) == 2  # no stand-in: the venv's own pip installs
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


def test_injected_faults_fail_the_first_calls_as_the_real_tool_would(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(shims, "FAULT_COUNTS", tmp_path / "faults")  # a host's own /run/.sandbox/faults
    monkeypatch.setenv("LINKER_SANDBOX_FAULTS", "dnf=2,aws-s3-cp=always")
    assert [shims.main(["dnf", "install", "-y", "python3.11"]) for _ in range(3)] == [1, 1, 0]
    assert "Failed to download metadata" in capsys.readouterr().err
    assert shims.main(["aws", "s3", "cp", "s3://b/k", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "download failed: s3://b/k: An error occurred (403)" in err and "LINKER_SANDBOX_FAULTS" in err
    monkeypatch.setenv("LINKER_SANDBOX_FAULTS", "rm=1")
    assert shims.main(["dnf", "install", "x"]) == 1
    assert "NAME=COUNT" in capsys.readouterr().err


def test_aws_ssm_put_parameter_writes_to_the_sandboxs_ssm(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_CONFIG_FILE", "/nonexistent"), ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")):
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LINKER_SANDBOX_FAULTS", raising=False)
    with mock_aws():
        args = ["aws", "ssm", "put-parameter", "--region", "eu-west-1", "--name", "/linker/x/sites/s/bootstrap",
                "--type", "String", "--value", '{"a": 1}', "--cli-connect-timeout", "10"]
        assert shims.main([*args, "--overwrite"]) == 0 and shims.main([*args, "--overwrite"]) == 0
        assert shims.main(args) == 1  # exists, and no --overwrite: as the real CLI
        got = boto3.client("ssm", region_name="eu-west-1").get_parameter(Name="/linker/x/sites/s/bootstrap")
        assert got["Parameter"]["Value"] == '{"a": 1}' and got["Parameter"]["Version"] == 2
