"""Thin wrappers over iproute2, nftables and setns(2) for the sandbox: every call bounded in time, every failure a
SandboxError naming the command and what it printed.

Thread-safety: the functions keep no state; ``in_netns`` runs its function on a fresh thread that enters the
namespace, so the caller's thread (and the rest of the process) never changes namespace.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from linker.errors import SandboxError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
TIMEOUT = 30.0
T = TypeVar("T")


def run(argv: Sequence[str], input: str | None = None, check: bool = True,
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; SandboxError when it fails (``check``) or outlives ``timeout``."""
    try:
        done = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"`{' '.join(argv)}` did not finish within {timeout:.0f} s") from None
    except FileNotFoundError:
        raise SandboxError(f"{argv[0]} is not installed", fix="run: sudo bash scripts/setup") from None
    if check and done.returncode != 0:
        raise SandboxError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return done


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["ip", *(["-n", netns] if netns else []), *args], check=check)


def ip_json(*args: str, netns: str | None = None) -> list[dict[str, Any]]:
    out = ip("-j", *args, netns=netns).stdout.strip()
    return json.loads(out) if out else []


def ip_batch(commands: Sequence[str], netns: str | None = None) -> None:
    """Several ``ip`` commands in one process (``ip -batch``); stops at the first failure."""
    if commands:
        run(["ip", *(["-n", netns] if netns else []), "-batch", "-"], input="\n".join(commands) + "\n")


def exists(netns: str) -> bool:
    return (NETNS_DIR / netns).exists()


def list_netns() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def add(netns: str) -> None:
    """Create namespace ``netns`` with loopback up (a leftover of the same name is an error: never adopt it)."""
    if exists(netns):
        raise SandboxError(f"network namespace {netns} already exists (left by a sandbox whose records are gone?)",
                           fix=f"check nothing uses it, then: sudo ip netns delete {netns}")
    ip("netns", "add", netns)
    ip("link", "set", "lo", "up", netns=netns)


def delete(netns: str) -> None:
    if exists(netns):
        ip("netns", "delete", netns, check=False)


def sysctl(netns: str, settings: dict[str, str]) -> None:
    """Network sysctls are per namespace: set them inside ``netns``."""
    run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())])


def nft(netns: str, ruleset: str) -> None:
    """Load ``ruleset`` into ``netns`` in one transaction (all of it or nothing)."""
    run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=ruleset)


def pids_in(netns: str) -> list[int]:
    """Processes whose network namespace is ``netns``."""
    if not exists(netns):
        return []
    out = run(["ip", "netns", "pids", netns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (with the PID, it names one process); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int, started: int | None = None) -> bool:
    """Whether ``pid`` runs and, given ``started``, is still the same process (not a reused PID)."""
    now = start_time(pid)
    if now is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and (started is None or now == started)


_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(netns: str, fn: Callable[[], T], timeout: float = TIMEOUT) -> T:
    """``fn()`` run on a new thread inside ``netns`` (sockets it creates stay there); its result or exception."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise SandboxError(f"cannot enter namespace {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise SandboxError(f"work inside namespace {netns} did not finish within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def thread_in_netns(netns: str, target: Callable[[], None], name: str) -> threading.Thread:
    """A started daemon thread that enters ``netns`` and runs ``target`` (a server's loop, for instance)."""
    def body() -> None:
        fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise SandboxError(f"cannot enter namespace {netns}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)
        target()

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
