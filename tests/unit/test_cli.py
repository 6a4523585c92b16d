import subprocess
import sys

from linker.cli import main
from linker.errors import ConfigError, ExitCode


def test_version_runs_as_a_command():
    out = subprocess.run([sys.executable, "-m", "linker", "--version"], capture_output=True, text=True, check=True)
    assert "linker" in out.stdout


def test_config_error_names_file_and_line():
    err = ConfigError("unknown key 'Foo'", path="/etc/linker/linker0.conf", line=7, fix="remove it")
    assert str(err).startswith("/etc/linker/linker0.conf:7: unknown key 'Foo'")
    assert err.exit_code == ExitCode.USER


def test_unknown_command_is_a_user_error(capsys):
    try:
        main(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == ExitCode.USER
    else:
        raise AssertionError("expected exit")
