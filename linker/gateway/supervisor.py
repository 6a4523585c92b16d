"""Runs `linker daemon` and restarts it when it dies (with backoff), as systemd would.

The daemon outlives the agent: the agent's unit has ``KillMode=process``, so an agent that crashes or is killed
leaves the data plane running (docs/HA.md, failure kind 4), and the agent that systemd starts next *adopts* the
daemon serving the interface's UAPI socket (its PID from SO_PEERCRED) instead of starting a second one. A graceful
stop of the agent (SIGTERM) stops the daemon too. Not thread-safe: the agent's loop owns it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from linker.gateway import wgctl

log = logging.getLogger("linker.gateway")


class DaemonSupervisor:
    def __init__(self, command: list[str], interface: str) -> None:
        self.command = command
        self.interface = interface
        self.process: subprocess.Popen | None = None
        self.adopted: tuple[int, int | None] | None = None  # (pid, start time) of a daemon a previous agent started
        self.restarts = 0
        self._backoff = 1.0
        self._next_start = 0.0

    @classmethod
    def for_config(cls, config: Path, interface: str, command: list[str] | None = None,
                   user: str = "") -> DaemonSupervisor:
        """``user``: the daemon drops to it once its device and sockets are open (``linker daemon --user``)."""
        base = command or [sys.executable, "-m", "linker", "daemon"]
        return cls([*base, str(config), "--interface", interface, *(["--user", user] if user else [])], interface)

    @property
    def socket(self) -> Path:
        return wgctl.socket_path(self.interface)

    def adopt(self) -> int | None:
        """Take over the daemon already serving the interface (started by an agent that died): its PID, or None
        when none runs."""
        pid = wgctl.socket_owner(self.socket)
        if pid is None or pid == os.getpid():
            return None
        self.adopted = (pid, _start_time(pid))
        log.info("daemon already running: adopted", extra={"iface": self.interface, "count": pid})
        return pid

    @property
    def pid(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        if self.adopted is not None and _alive(*self.adopted):
            return self.adopted[0]
        return None

    def ensure_running(self, now: float) -> bool:
        """Start the daemon if it is not running; True when it runs and its UAPI socket answers."""
        if self.adopted is not None:
            if _alive(*self.adopted):
                return True
            log.warning("the adopted daemon (pid %s) exited; restarting", self.adopted[0],
                        extra={"iface": self.interface})
            self.adopted = None
            self.restarts += 1
            self._next_start = now + self._backoff
            self._backoff = min(self._backoff * 2, 30.0)
        if self.process is None and self.restarts == 0 and self._next_start == 0.0 and self.adopt() is not None:
            return True
        if self.process is not None and self.process.poll() is None:
            if now - self._next_start > 60:
                self._backoff = 1.0  # it stayed up a while: the next failure is a new one
            return True
        if self.process is not None:
            log.warning("daemon exited with %s; restarting in %.0f s", self.process.returncode, self._backoff,
                        extra={"iface": self.interface})
            self.process = None
            self._next_start = now + self._backoff
            self._backoff = min(self._backoff * 2, 30.0)
            self.restarts += 1
        if now < self._next_start:
            return False
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, env=os.environ.copy())
        self._next_start = now
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if self.socket.exists():
                try:
                    wgctl.get(self.socket)
                    log.info("daemon running", extra={"iface": self.interface, "count": self.process.pid})
                    return True
                except wgctl.UapiError:
                    pass
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        if self.adopted is not None:
            _terminate(self.adopted, timeout)
            self.adopted = None
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): with the PID, an identity
    that a recycled PID does not share."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _alive(pid: int, started: int | None) -> bool:
    now = _start_time(pid)
    if now is None:
        return False
    try:  # a zombie (an adopted daemon is not our child: init reaps it) counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and (started is None or now == started)


def _terminate(process: tuple[int, int | None], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``, to a process that is not our child (by PID and start time)."""
    pid, started = process
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not _alive(pid, started):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid, started):
            time.sleep(0.05)
