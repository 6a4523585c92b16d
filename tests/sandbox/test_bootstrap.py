"""The gateway's bootstrap script as rendered, run by sh against stand-ins that fail on demand (no root): it
retries with backoff, records each failed attempt for `linker status`, gives up after its bounded time, and once
the wheelhouse is installed a re-run does nothing."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

from linker.contract import BootstrapReport
from linker.control import render
from linker.control.operations import bootstrap_summary
from tests.sandbox.test_userdata import G

AWS = '''#!{python}
import json, os, shutil, sys
args, root = sys.argv[1:], os.environ["TEST_ROOT"]
def log(line):
    with open(os.path.join(root, "calls"), "a") as f:
        f.write(line + "\\n")
if args[:2] == ["s3", "cp"]:
    log("s3 cp " + args[-2])
    count_file = os.path.join(root, "s3-failures")
    failed = int(open(count_file).read()) if os.path.exists(count_file) else 0
    if failed < int(os.environ["FAIL_DOWNLOADS"]):
        open(count_file, "w").write(str(failed + 1))
        sys.exit("download failed: " + args[-2] + ": An error occurred (403) when calling the HeadObject "
                 "operation: Forbidden")
    shutil.copy(os.path.join(root, "package.tar"), args[-1])
elif args[:2] == ["ssm", "put-parameter"]:
    assert "--overwrite" in args and args[args.index("--name") + 1] == os.environ["WANT_PARAMETER"]
    with open(os.path.join(root, "records"), "a") as f:
        f.write(args[args.index("--value") + 1] + "\\n")
else:
    sys.exit("unexpected: aws " + " ".join(args))
'''
PYTHON = '''#!/bin/sh
# python3.11 -m venv DIR: a venv whose pip records its arguments and installs a `linker`
[ "$1 $2" = "-m venv" ] || exit 2
mkdir -p "$3/bin"
printf '#!/bin/sh\\necho "$*" >> %s/pip-args\\n' "$TEST_ROOT" > "$3/bin/pip"
printf 'printf "#!/bin/sh\\\\n" > "%s/bin/linker"\\nchmod +x "%s/bin/linker"\\n' "$3" "$3" >> "$3/bin/pip"
chmod +x "$3/bin/pip"
'''
DNF = '#!/bin/sh\necho "dnf $*" >> "$TEST_ROOT/calls"\n'


def script(tmp_path: Path, package: bytes, give_up_after: int = 60) -> tuple[Path, dict[str, str]]:
    """The rendered script with its directories moved under ``tmp_path`` and second-long delays."""
    g = replace(G, package_sha256=hashlib.sha256(package).hexdigest())
    text = render.bootstrap_script(g)
    for old, new in (("VENV=/opt/linker", f"VENV={tmp_path}/opt/linker"),
                     ("WORK=/var/tmp/linker-bootstrap", f"WORK={tmp_path}/work"),
                     ("STATE=/var/lib/linker-bootstrap", f"STATE={tmp_path}/state"),
                     ("INSTANCE_ID=/var/lib/cloud/data/instance-id", f"INSTANCE_ID={tmp_path}/instance-id"),
                     ("FIRST_DELAY=5", "FIRST_DELAY=1"), ("MAX_DELAY=300", "MAX_DELAY=2"),
                     ("GIVE_UP_AFTER=3600", f"GIVE_UP_AFTER={give_up_after}")):
        assert f"\n{old}\n" in text, old
        text = text.replace(f"\n{old}\n", f"\n{new}\n")
    path = tmp_path / "linker-bootstrap"
    path.write_text(text)
    path.chmod(0o755)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("aws", AWS.format(python=sys.executable)), ("python3.11", PYTHON), ("dnf", DNF)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "instance-id").write_text("i-0123456789abcdef0\n")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TEST_ROOT": str(tmp_path), "LANG": "C.UTF-8",
           "WANT_PARAMETER": "/linker/prod/sites/eu-west-1/bootstrap"}
    return path, env


def wheelhouse(name: str = "linker_gateway-0.1.0-py3-none-any.whl") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"whl\n"))
    return buf.getvalue()


def records(tmp_path: Path) -> list[BootstrapReport]:
    path = tmp_path / "records"
    return [BootstrapReport.from_json(line) for line in path.read_text().splitlines()] if path.exists() else []


def run(path: Path, env: dict[str, str], fail_downloads: int | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(path)], env={**env, "FAIL_DOWNLOADS": str(fail_downloads)}, cwd="/",
                          capture_output=True, text=True, timeout=120)


def test_transient_failures_are_retried_with_backoff_recorded_then_it_installs_once(tmp_path: Path) -> None:
    package = wheelhouse()
    (tmp_path / "package.tar").write_bytes(package)
    path, env = script(tmp_path, package)
    started = time.monotonic()
    done = run(path, env, 2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - started >= 3  # waited 1 s, then 2 s
    got = records(tmp_path)
    assert [(r.state, r.step, r.attempt, r.retry_in) for r in got] == [
        ("retrying", "download", 1, 1), ("retrying", "download", 2, 2), ("succeeded", None, 3, None)]
    first = got[0]
    assert (first.link, first.site, first.instance, first.exit_code) == ("prod", "eu-west-1", "i-0123456789abcdef0",
                                                                          1)
    assert first.reason().endswith("An error occurred (403) when calling the HeadObject operation: Forbidden")
    assert abs(first.at - time.time()) < 60
    # the wheelhouse was checked and unpacked, then installed with pip from it alone
    assert (tmp_path / "work" / "wheelhouse" / "linker_gateway-0.1.0-py3-none-any.whl").read_bytes() == b"whl\n"
    pip = (tmp_path / "pip-args").read_text()
    assert "--no-index" in pip and f"--find-links {tmp_path}/work/wheelhouse linker-gateway" in pip
    assert "attempt 3: install" in done.stdout and "installed in 3 attempt(s)" in done.stdout

    calls = (tmp_path / "calls").read_text()
    again = run(path, env, 0)  # a reboot: nothing expensive, nothing recorded
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert (tmp_path / "calls").read_text() == calls and len(records(tmp_path)) == 3


def test_a_package_that_does_not_match_its_hash_is_never_installed_and_it_gives_up(tmp_path: Path) -> None:
    (tmp_path / "package.tar").write_bytes(wheelhouse("evil-1.0-py3-none-any.whl"))
    path, env = script(tmp_path, wheelhouse(), give_up_after=3)
    done = run(path, env, 0)
    assert done.returncode == 1 and "giving up after 2 attempts" in done.stdout
    got = records(tmp_path)
    assert [(r.state, r.step, r.attempt) for r in got] == [("retrying", "verify", 1), ("failed", "verify", 2)]
    assert "FAILED" in got[-1].output and got[-1].retry_in is None
    assert not (tmp_path / "pip-args").exists() and not (tmp_path / "opt" / "linker" / "bin" / "linker").exists()
    assert not (tmp_path / "work" / "wheelhouse").exists()
    summary = bootstrap_summary(got[-1], got[-1].at + 180)
    assert summary.startswith("bootstrap failed at step verify (attempt 2, 3 min ago): ")
    assert "gave up" in summary


def test_what_it_records_stays_small_and_printable(tmp_path: Path) -> None:
    package = wheelhouse()
    (tmp_path / "package.tar").write_bytes(package)
    path, env = script(tmp_path, package, give_up_after=1)
    (tmp_path / "bin" / "aws").write_text((tmp_path / "bin" / "aws").read_text().replace(
        'sys.exit("download failed: "', 'print("\\u00e9\\x01\\"quoted\\" \\\\ " * 200); sys.exit("download failed: "'))
    done = run(path, env, 10)
    assert done.returncode == 1
    (report,) = records(tmp_path)
    assert report.state == "failed" and report.step == "download"
    assert len(report.to_json()) < 4096 and report.output.isascii() and '"quoted"' in report.output
    assert json.loads((tmp_path / "records").read_text())["output"] == report.output
