"""systemd's part on a sandbox host: start the units the host asked for and keep them running as their unit says.

A unit's main process runs inside the host (``nsenter`` into the host init's mount and network namespaces), in a
process group of its own, with the unit's Environment= over the host's environment and its output appended to the
host's journal file. State/RuntimeDirectory= are made with their modes before each start; when the main process
ends, the rest of its process group goes too (KillMode=control-group or mixed; with KillMode=process, only the main
process is ever signalled and what it started keeps running), the RuntimeDirectory is removed (unless
RuntimeDirectoryPreserve=) and Restart=/RestartSec= decide whether and when it starts again. A Type=oneshot unit is
"activating" while its process runs, then "active" (RemainAfterExit=yes) or "inactive" when it exited 0, "failed"
otherwise; a unit ordered after one it requires waits ("waiting") until that one is ready (linker.sandbox.hosts).

Not thread-safe: the supervisor's loop owns every ``Service``.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from linker.sandbox.userdata import Unit, restarts_after

log = logging.getLogger("linker.sandbox")
STOP_TIMEOUT = 10.0


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class Service:
    def __init__(self, unit: Unit, enter: list[str], env: dict[str, str], run_dir: Path, journal: Path,
                 instance: str) -> None:
        self.unit, self.enter, self.env = unit, enter, env
        self.run_dir, self.journal, self.instance = run_dir, journal, instance
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.next_start: float | None = None
        self.state = "inactive"
        self.last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    @property
    def ready(self) -> bool:
        """Units ordered after this one may start: it runs, or it is a oneshot that exited successfully."""
        if self.unit.oneshot:  # it ran (an exit it may ignore, ExecStart=-, included) and did not fail
            return self.last_exit is not None and self.state in ("active", "inactive")
        return self.state == "active"

    @property
    def pending(self) -> bool:
        """Started or about to be: a start request for it changes nothing."""
        if self.unit.oneshot:
            return self.state in ("waiting", "activating", "active")
        return self.state == "waiting" or self.pid is not None

    def fail_dependency(self, dependency: str) -> None:
        """A unit it requires failed: it is not started (systemd's result "dependency")."""
        self.state, self.next_start = "failed", None
        log.error("%s not started: the unit it requires, %s, failed", self.unit.name, dependency,
                  extra={"resource": self.instance})
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("ab") as out:
            out.write(f"-- sandbox systemd: {self.unit.name} not started: {dependency} failed --\n".encode())

    def _prepare(self) -> list[str]:
        u = self.unit
        dirs = [f"/var/lib/{d}" for d in u.state_directories]
        mkdirs = [f"install -d -m {u.state_directory_mode:o} {' '.join(dirs)}"] if dirs else []
        runtime = [f"/run/{d}" for d in u.runtime_directories]
        if runtime:
            mkdirs.append(f"install -d -m {u.runtime_directory_mode:o} {' '.join(runtime)}")
        if not mkdirs:
            return list(u.exec_start[0])
        return ["/bin/sh", "-c", " && ".join(mkdirs) + ' && exec "$@"', u.name, *u.exec_start[0]]

    def start(self, now: float) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        with self.journal.open("ab") as out:
            out.write(f"-- sandbox systemd: starting {self.unit.name} --\n".encode())
            out.flush()
            env = {**self.env, **dict(self.unit.environment)}
            self.process = subprocess.Popen(
                [*self.enter, f"--wd={self.unit.working_directory}", "--", *self._prepare()],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.state, self.next_start = "activating" if self.unit.oneshot else "active", None
        log.info("started %s (pid %s)", self.unit.name, self.process.pid, extra={"resource": self.instance})

    def tick(self, now: float) -> None:
        """Notice an exit, clean up after it, restart when due."""
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self.last_exit = code
            self._reap_group(self.process.pid)
            self.process = None
            self._remove_runtime()
            exit_code = None if code < 0 else code
            if self.unit.oneshot and self.state == "activating":
                ok = code == 0 or self.unit.ignore_failure
                self.state = ("active" if self.unit.remain_after_exit else "inactive") if ok else "failed"
                (log.info if ok else log.error)("%s exited with %s", self.unit.name, code,
                                                extra={"resource": self.instance})
            elif self.state == "active" and restarts_after(self.unit, exit_code):
                self.state, self.next_start = "activating", now + self.unit.restart_sec
                self.restarts += 1
                log.warning("%s exited with %s; restarting in %.1f s", self.unit.name, code, self.unit.restart_sec,
                            extra={"resource": self.instance})
            elif self.state == "active":
                self.state = "failed" if code not in (0, None) and not self.unit.ignore_failure else "inactive"
        if self.state == "activating" and self.next_start is not None and now >= self.next_start:
            self.start(now)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.state, self.next_start = "inactive", None
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(5)
        self._reap_group(self.process.pid)
        self.process = None
        self._remove_runtime()

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        if self.unit.kill_mode == "process":
            try:
                os.kill(self.process.pid, sig)
            except ProcessLookupError:
                pass
        else:
            signal_group(self.process.pid, sig)

    def _reap_group(self, pgid: int) -> None:
        """KillMode=control-group: what the main process left running in its group goes with it."""
        if self.unit.kill_mode == "process":
            return
        signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.05)
        signal_group(pgid, signal.SIGKILL)

    def _remove_runtime(self) -> None:
        if self.unit.runtime_directory_preserve in ("yes", "true", "restart"):
            return
        for d in self.unit.runtime_directories:
            shutil.rmtree(self.run_dir / d, ignore_errors=True)

    def record(self) -> dict[str, object]:
        return {"state": self.state, "pid": self.pid, "restarts": self.restarts, "last_exit": self.last_exit,
                "journal": str(self.journal)}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
