"""linker's systemd units, scored as a security team would: `systemd-analyze security --offline=yes` on the files
(no running systemd needed). The daemon's template unit must be "OK" (exposure 2.5 or lower); the score is printed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import linker
from linker.cli import cli as cli_main

UNITS = Path(linker.__file__).parent / "templates" / "systemd"
OK = 2.5


def exposure(unit: Path, tmp: Path) -> float:
    copy = tmp / unit.name.replace("@.", "@wg0.")  # an instance of the template, as systemd would load it
    copy.write_text(unit.read_text())
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(copy)],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


def test_the_daemon_unit_scores_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    score = exposure(UNITS / "linker-daemon@.service", tmp_path)
    with capsys.disabled():
        print(f"\nsystemd-analyze security: linker-daemon@.service exposure {score} (OK is {OK} or lower)")
    assert score <= OK


def test_the_unit_runs_the_daemon_unprivileged() -> None:
    text = (UNITS / "linker-daemon@.service").read_text()
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["User"] == "linker-wg" and settings["CapabilityBoundingSet"] == "CAP_NET_ADMIN"
    assert settings["AmbientCapabilities"] == "CAP_NET_ADMIN" and settings["NoNewPrivileges"] == "yes"
    assert settings["ExecStart"].startswith("linker daemon ${CREDENTIALS_DIRECTORY}/%i.conf")


def test_the_cli_prints_the_packaged_unit() -> None:
    result = CliRunner().invoke(cli_main, ["systemd-unit", "daemon"], standalone_mode=False)
    assert result.exit_code == 0, result.output
    assert result.output == (UNITS / "linker-daemon@.service").read_text()


def test_the_gateway_unit_is_confined_and_its_score_printed(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The agent's unit, rendered as a gateway gets it: its score is printed (the agent needs root's network
    powers to start the daemon, so it is not held to the daemon's 2.5), and it must not be left unconfined."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    from linker.control.render import GatewayInputs, service_unit

    text = service_unit(GatewayInputs(link="demo", site="us-east-1", region="us-east-1", port=51820,
                                      package_bucket="linker-demo", package_key="wheels/x.tar",
                                      package_sha256="0" * 64))
    unit = tmp_path / "linker-gateway.service"
    unit.write_text(text)
    score = exposure(unit, tmp_path)
    with capsys.disabled():
        print(f"\nsystemd-analyze security: linker-gateway.service exposure {score}")
    assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text
    assert score < 6.0, "the gateway agent's unit lost its confinement"
