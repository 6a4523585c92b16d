"""The agent's daemon supervisor adopts a daemon that a previous agent started (its unit has KillMode=process:
an agent that dies leaves the data plane running, docs/HA.md kind 4), restarts it when it dies, stops it on stop."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from linker.gateway import supervisor as supmod
from linker.gateway.supervisor import DaemonSupervisor

# A stand-in daemon: serves a UAPI socket at argv[1] answering every request with an empty device
FAKE = r"""
import os, socket, sys
path = sys.argv[1]
if os.path.exists(path):
    os.unlink(path)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(8)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    try:
        conn.settimeout(1.0)
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        if data:
            conn.sendall(b"listen_port=51820\nerrno=0\n\n")
    except OSError:
        pass
    finally:
        conn.close()
"""


@pytest.fixture
def sock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wg0.sock"
    monkeypatch.setattr(DaemonSupervisor, "socket", property(lambda self: path))
    return path


def fake_daemon(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", FAKE, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_running_daemon_is_adopted_not_started_again_and_stopped_with_the_agent(sock: Path) -> None:
    previous = fake_daemon(sock)  # what the agent that died had started
    try:
        sup = DaemonSupervisor([sys.executable, "-c", "raise SystemExit(3)"], "wg0")
        assert sup.ensure_running(time.monotonic())
        assert sup.process is None and sup.pid == previous.pid  # adopted: no second daemon
        assert sup.ensure_running(time.monotonic()) and sup.restarts == 0
        sup.stop(timeout=5)
        assert previous.wait(5) is not None and sup.pid is None
    finally:
        if previous.poll() is None:
            previous.kill()
            previous.wait()


def test_an_adopted_daemon_that_dies_is_restarted(sock: Path, tmp_path: Path) -> None:
    previous = fake_daemon(sock)
    sup = DaemonSupervisor([sys.executable, "-c", FAKE, str(sock)], "wg0")
    try:
        assert sup.ensure_running(time.monotonic()) and sup.pid == previous.pid
        previous.kill()
        previous.wait()
        assert not sup.ensure_running(time.monotonic())  # noticed; restarted after the backoff
        assert sup.restarts == 1
        deadline = time.monotonic() + 10
        while not sup.ensure_running(time.monotonic() + 5):
            assert time.monotonic() < deadline
        assert sup.process is not None and sup.pid == sup.process.pid != previous.pid
    finally:
        sup.stop(timeout=5)


def test_no_daemon_running_one_is_started(sock: Path) -> None:
    sup = DaemonSupervisor([sys.executable, "-c", FAKE, str(sock)], "wg0")
    try:
        assert sup.ensure_running(time.monotonic())
        assert sup.process is not None and sup.pid == sup.process.pid and sup.adopted is None
    finally:
        sup.stop(timeout=5)
    assert sup.pid is None


def test_a_recycled_pid_is_not_the_adopted_daemon() -> None:
    me = supmod._start_time(supmod.os.getpid())
    assert supmod._alive(supmod.os.getpid(), me)
    assert not supmod._alive(supmod.os.getpid(), (me or 0) + 1)
    assert not supmod._alive(2**22 + 12345, None)
