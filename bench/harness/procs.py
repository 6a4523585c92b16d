"""Processes the benchmark starts: spawned (optionally inside a namespace), tracked and stopped by PID, timed.

Nothing here looks a process up by name: every process is one this table started, or a descendant of one
(found through ``/proc/PID/stat``'s parent field), and PID reuse is guarded by the start time.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linker.sandbox import netns

_PR_SET_PDEATHSIG = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` the benchmark uses (times in clock ticks)."""

    pid: int
    ppid: int
    start: int
    ticks: int  # utime + stime + cutime + cstime


def read_stat(pid: int) -> ProcStat | None:
    """The process's stat, or None when it is gone (or a zombie, whose times no longer move)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: the fields proper start after the last ')'
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    # fields[k] is stat field k + 3 (1-based, man 5 proc): ppid 4, utime 14 .. cstime 17, starttime 22
    return ProcStat(pid, int(fields[1]), int(fields[19]), sum(int(f) for f in fields[11:15]))


def descendants(pid: int) -> list[ProcStat]:
    """Every live descendant of ``pid`` (children, grandchildren, ...), read from /proc at this moment."""
    children: dict[int, list[ProcStat]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = read_stat(int(entry.name))
            if st is not None:
                children.setdefault(st.ppid, []).append(st)
    found: list[ProcStat] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system, the reaped children's included) of ``pids`` and their live descendants."""
    ticks = 0
    for pid in pids:
        for st in [read_stat(pid), *descendants(pid)]:
            if st is not None:
                ticks += st.ticks
    return ticks / _CLK_TCK


def run_ns(pids: list[int]) -> int:
    """Nanoseconds on CPU so far of every thread of ``pids`` and their live descendants (``schedstat``).

    Exact where ``cpu_seconds`` counts clock ticks: fit for short spans such as a series of pings."""
    total = 0
    for pid in pids:
        for st in [read_stat(pid), *descendants(pid)]:
            if st is None:
                continue
            try:
                tasks = os.listdir(f"/proc/{st.pid}/task")
            except FileNotFoundError:
                continue
            for tid in tasks:
                try:
                    total += int(Path(f"/proc/{st.pid}/task/{tid}/schedstat").read_text().split()[0])
                except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                    pass
    return total


_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _child_setup() -> None:
    """In the child before exec: take the signals ``spawn`` held back, and get SIGTERM if the benchmark dies
    (so even a SIGKILLed run leaves no daemon behind)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ProcessTable:
    """The long-running processes of one benchmark run (daemons, iperf3 servers).

    Not thread-safe; the benchmark is one thread. ``stop`` and ``stop_all`` never raise for a process that
    is already gone.
    """

    def __init__(self) -> None:
        self._live: dict[int, subprocess.Popen[Any]] = {}
        self.started: list[dict[str, object]] = []  # every process ever spawned: pid, start (ticks), program

    def spawn(self, argv: list[str], *, ns: str | None = None, log: Path | None = None,
              env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[Any]:
        """Start ``argv`` (inside namespace ``ns`` if given), output to ``log``; returns the Popen.

        ``ip netns exec`` execs the command in place, so the returned PID is the command's own. The child gets a
        session of its own, so a Ctrl-C at the terminal reaches only the benchmark, which then stops it in order.
        """
        # an interrupt between the fork and the bookkeeping would leave a process nobody stops: hold it back
        signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
        try:
            proc = netns.spawn(argv, ns, log=log, env=env, cwd=cwd, new_session=True, preexec_fn=_child_setup)
            st = read_stat(proc.pid)
            self._live[proc.pid] = proc
            # the start time tells this process from a later one that reuses its PID
            self.started.append({"pid": proc.pid, "start": st.start if st else None, "program": argv[0]})
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
        return proc

    def alive(self, pid: int) -> bool:
        """Whether a process this table started is still running."""
        proc = self._live.get(pid)
        return proc is not None and proc.poll() is None

    def stop(self, pid: int, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the process's descendants are killed too if left over."""
        proc = self._live.get(pid)
        if proc is None:
            return
        kin = descendants(pid)  # read before the parent goes, or they would be re-parented out of sight
        netns.stop(proc, grace)
        for st in kin:
            now = read_stat(st.pid)
            if now is not None and now.start == st.start:  # the same process, not a reused PID
                try:
                    os.kill(st.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # forgotten only once gone, so that an interrupted stop is finished by stop_all
        del self._live[pid]

    def stop_all(self) -> None:
        """Stop every process still running, newest first (servers and clients before the daemons they use)."""
        for pid in reversed(list(self._live)):
            self.stop(pid)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass; returns its last verdict."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
