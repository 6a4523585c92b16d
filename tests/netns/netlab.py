"""A small lab of network namespaces for tests: hosts, veth links, processes; everything removed on exit.

    with Lab("dp") as lab:
        a, b = lab.host("a"), lab.host("b")
        lab.link(a, "192.0.2.1/24", b, "192.0.2.2/24")
        proc = lab.spawn(a, ["linker", "daemon", ...])

The work is done by ``linker.sandbox.netns`` (the one namespace toolkit); the lab only remembers what it made so
that it can remove it, even when the test fails. Names carry the test process's PID so parallel runs never
collide, and stay within 15 characters for interfaces. Processes are stopped by the PID this lab started
(SIGTERM, then SIGKILL), never by name. Addresses are TEST-NET (RFC 5737) or private ranges that exist only
inside the namespaces.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from linker.sandbox import netns

REPO = Path(__file__).resolve().parents[2]
LINKER = [sys.executable, "-m", "linker"]
PROBE = [sys.executable, "-m", "linker.sandbox.probe"]


def run(argv: list[str], ns: str | None = None, *, check: bool = True, timeout: float = 60,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``argv`` run inside ``ns`` (or here); SandboxError when it fails (``check``) or outlives ``timeout``."""
    return netns.run(argv, input=input, check=check, timeout=timeout, netns=ns)


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
    """Namespaces, links and processes of one test. Not thread-safe; ``close`` never raises."""

    def __init__(self, name: str, directory: Path | None = None) -> None:
        """``directory`` holds the lab's files (configs, logs); without one, a temporary one removed on close."""
        self.tag = netns.unique(name)
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[Any]] = []
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
        """A new namespace with loopback up and IPv6 enabled; returns its name."""
        ns = f"lkt-{self.tag}-{name}"
        netns.add(ns)
        self.namespaces.append(ns)
        netns.sysctl(ns, {"net.ipv6.conf.all.disable_ipv6": "0"}, check=False)
        return ns

    def link(self, ns_a: str, addr_a: str | None, ns_b: str, addr_b: str | None) -> tuple[str, str]:
        """A veth pair between two namespaces, with an address (CIDR) on each end; returns the interface names."""
        self._links += 1
        ia, ib = f"v{self.tag}{self._links}a"[-15:], f"v{self.tag}{self._links}b"[-15:]
        netns.veth(ns_a, ia, ns_b, ib)
        for ns, iface, addr in ((ns_a, ia, addr_a), (ns_b, ib, addr_b)):
            if addr:
                netns.addr_add(ns, iface, addr)
        return ia, ib

    def spawn(self, ns: str, argv: list[str], log: Path | None = None, env: dict[str, str] | None = None,
              capture: bool = False) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``ns`` (output to ``log``, or to text pipes when ``capture``); stopped on close."""
        proc = netns.spawn(argv, ns, log=log, capture=capture, env=env, cwd=REPO)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Stop a process this lab started (``sig``, then SIGKILL after ``timeout`` s); returns its exit code."""
        return netns.stop(proc, grace=timeout, sig=sig)

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(OSError):
                self.stop(proc, timeout=5)
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()
        self._cleanups.clear()
        for ns in reversed(self.namespaces):
            netns.delete(ns)
        self.namespaces.clear()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def ping(ns: str, addr: str, count: int = 3, timeout: float = 2) -> bool:
    res = run(["ping", "-c", str(count), "-i", "0.2", "-W", str(timeout), addr], ns, check=False,
              timeout=count * (timeout + 1) + 5)
    return res.returncode == 0


def _line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line ``proc`` prints, or "" if it prints none within ``timeout`` s (or exits)."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        return proc.stdout.readline().strip() if sel.select(timeout) else ""


def transfer(lab: Lab, server_ns: str, server_addr: str, client_ns: str, size: int, port: int = 5201,
             timeout: float = 120) -> tuple[str, str, float]:
    """Send ``size`` pseudo-random bytes over TCP from client to server with the package's probe; returns
    (sha256 sent, sha256 received, seconds). The sender retries connecting for 10 s (the tunnel may still be
    handshaking); the whole transfer is bounded by ``timeout``. A transfer that fails raises AssertionError."""
    server = lab.spawn(server_ns, [*PROBE, "recv", "--bind", server_addr, "--port", str(port), "--timeout", "120"],
                       capture=True)
    try:
        ready = _line(server, 30)
        if ready != "listening":
            lab.stop(server)
            raise AssertionError(f"the probe's receiver did not start: {ready or server.communicate()[1]}")
        client = run([*PROBE, "send", "--to", server_addr, "--port", str(port), "--bytes", str(size),
                      "--timeout", "60", "--connect-within", "10"], client_ns, check=False, timeout=timeout)
        sent = json.loads(client.stdout.strip().splitlines()[-1]) if client.stdout.strip() else {}
        assert "sha256" in sent, f"the transfer failed: {sent.get('error') or client.stderr.strip()}"
        out, _ = server.communicate(timeout=30)
        received = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    finally:
        lab.stop(server)
    return str(sent["sha256"]), str(received.get("sha256", received.get("error", ""))), float(sent["seconds"])
