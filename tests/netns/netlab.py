"""A small lab of network namespaces for tests: hosts, veth links, processes; everything removed on exit.

    with Lab("dp") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        proc = lab.spawn(a, ["linker", "daemon", ...])

Names carry the test process's PID so parallel runs never collide, and stay within 15 characters for interfaces.
Processes are stopped by the PID this lab started (SIGTERM, then SIGKILL), never by name. Addresses are TEST-NET
(RFC 5737) or private ranges that exist only inside the namespaces.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINKER = [sys.executable, "-m", "linker"]
_counter = itertools.count()


def run(argv: list[str], ns: str | None = None, *, check: bool = True, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + argv
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout, input=input)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def genkey() -> tuple[str, str]:
    """(private, public), both base64, from `wg` itself so that the two tools stay comparable."""
    priv = run(["wg", "genkey"]).stdout.strip()
    return priv, run(["wg", "pubkey"], input=priv).stdout.strip()


class Lab:
    def __init__(self, name: str, directory: Path | None = None) -> None:
        """``directory`` holds the lab's files (configs, logs); without one, a temporary one removed on close."""
        self.tag = f"{name}{os.getpid() % 10000}{next(_counter)}"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._links = 0
        self._own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix=f"lab-{self.tag}-")) if directory is None else directory
        self._cleanups: list[Callable[[], None]] = []

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on close, after the processes are stopped and before the namespaces go."""
        self._cleanups.append(fn)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def host(self, name: str) -> str:
        ns = f"lkt-{self.tag}-{name}"
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        run(["ip", "link", "set", "lo", "up"], ns)
        run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0"], ns, check=False)
        return ns

    def link(self, ns_a: str, addr_a: str | None, ns_b: str, addr_b: str | None) -> tuple[str, str]:
        """A veth pair between two namespaces, with an address (CIDR) on each end; returns the interface names."""
        self._links += 1
        ia, ib = f"v{self.tag}{self._links}a"[-15:], f"v{self.tag}{self._links}b"[-15:]
        run(["ip", "link", "add", ia, "netns", ns_a, "type", "veth", "peer", "name", ib, "netns", ns_b])
        for ns, iface, addr in ((ns_a, ia, addr_a), (ns_b, ib, addr_b)):
            if addr:
                run(["ip", "addr", "add", addr, "dev", iface], ns)
            run(["ip", "link", "set", iface, "up"], ns)
        return ia, ib

    def spawn(self, ns: str, argv: list[str], log: Path | None = None, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL  # closed right after the fork
        try:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=REPO, env=env)
        finally:
            if log:
                out.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Stop a process this lab started; returns its exit code."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(OSError):
                self.stop(proc, timeout=5)
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()
        self._cleanups.clear()
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns], check=False)
        self.namespaces.clear()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def ping(ns: str, addr: str, count: int = 3, timeout: float = 2) -> bool:
    res = run(["ping", "-c", str(count), "-i", "0.2", "-W", str(timeout), addr], ns, check=False,
              timeout=count * (timeout + 1) + 5)
    return res.returncode == 0


def transfer(lab: Lab, server_ns: str, server_addr: str, client_ns: str, size: int, port: int = 5201,
             timeout: float = 120) -> tuple[str, str, float]:
    """Send ``size`` random bytes over TCP from client to server; returns (sha256 sent, sha256 received, seconds)."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-m", "tests.netns.xfer", "recv",
                               server_addr, str(port)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    lab.procs.append(server)
    try:
        client = run([sys.executable, "-m", "tests.netns.xfer", "send", server_addr, str(port), str(size)],
                     client_ns, timeout=timeout)
        sent, seconds = client.stdout.split()
        received = server.communicate(timeout=30)[0].strip()
    finally:
        lab.stop(server)
    return sent, received, float(seconds)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
