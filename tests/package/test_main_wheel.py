"""The main ``linker`` wheel, installed (not editable) outside the checkout, renders its templates, plans, brings a
link up without waiting for health and takes it down, against a moto server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

import linker
from tests.control.cloud import inventory, make_vpc
from tests.package.conftest import make_venv, site_packages

REPO = Path(__file__).resolve().parents[2]
E, W = "us-east-1", "eu-west-1"


@pytest.fixture(scope="module")
def main_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps --no-build-isolation`` of a copy of the checkout (the build writes beside its sources)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "linker", src / "linker", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out), str(src)], check=True, timeout=300, capture_output=True)
    return next(out.glob("linker-*.whl"))


def test_the_templates_are_package_data(main_wheel: Path) -> None:
    names = set(zipfile.ZipFile(main_wheel).namelist())
    templates = {p.name for p in (Path(linker.__file__).parent / "templates").glob("*.tftpl")}
    assert templates and {f"linker/templates/{t}" for t in templates} <= names


@pytest.fixture
def moto() -> Iterator[str]:
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    yield f"http://{host}:{port}"
    srv.stop()


def test_an_installed_linker_plans_then_ups_without_waiting_and_downs(main_wheel: Path, moto: str, tmp_path: Path,
                                                     run_in: Callable[..., subprocess.CompletedProcess[str]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": E,
             "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
             "AWS_EC2_METADATA_DISABLED": "true"}
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    session = boto3.session.Session()
    make_vpc(session, E, "10.10.0.0/16", endpoint_url=moto, tables=1)
    make_vpc(session, W, "10.20.0.0/16", endpoint_url=moto, tables=1)
    venv = make_venv(tmp_path / "venv")
    done = run_in(venv, "pip", "install", "--no-deps", "--no-index", "--no-cache-dir", str(main_wheel))
    assert done.returncode == 0, done.stdout + done.stderr
    # its dependencies from the test environment (offline), never its sources: the checkout is not on the path
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site_packages(venv) / "_test_deps.pth").write_text("\n".join(deps) + "\n")
    where = run_in(venv, "python", "-c", "import linker.control.render as r; print(r.TEMPLATES)")
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    env = {**creds, "LINKER_ENDPOINT_URL": moto, "HOME": str(Path.home()), "COLUMNS": "200"}
    plan = run_in(venv, "linker", "plan", E, W, env=env, cwd=str(tmp_path))
    assert "TemplateNotFound" not in plan.stderr
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "gateway" in plan.stdout

    up = run_in(venv, "linker", "up", E, W, "--yes", "--no-wait", "--json", env=env, cwd=str(tmp_path))
    assert up.returncode == 0, up.stdout + up.stderr
    assert {g["site"] for g in json.loads(up.stdout)["gateways"]} == {E, W}
    made = inventory(session, "default", [E, W], moto)
    assert all(made[r]["instances"] == 1 and made[r]["eips"] == 1 for r in (E, W)), made
    for region in (E, W):  # each site's bucket holds the wheelhouse its gateway's user-data names
        bucket = next(b for b, _ in made["buckets"] if b.startswith(f"linker-default-{region}-"))
        keys = [o["Key"] for o in session.client("s3", region_name=region, endpoint_url=moto).list_objects_v2(
            Bucket=bucket)["Contents"]]
        assert len(keys) == 1 and keys[0].startswith("wheels/") and keys[0].endswith(".tar"), keys

    down = run_in(venv, "linker", "down", "--yes", "--json", env=env, cwd=str(tmp_path))
    assert down.returncode == 0, down.stdout + down.stderr
    gone = inventory(session, "default", [E, W], moto)
    assert not gone["roles"] and not gone["buckets"] and all(not any(gone[r].values()) for r in (E, W)), gone
