"""The one toolkit for network namespaces (the sandbox, the netns tests and the benchmark all use it).

Links, addresses and routes go through pyroute2 (netlink, no process per call), on a socket opened by a thread
that entered the namespace; namespaces are created by ``ip netns add`` (see ``add`` for why) and removed by
pyroute2; sysctls, nft rulesets and commands run inside a namespace go through ``ip netns exec`` (see ``run``).
Every call is bounded in time and every failure is a SandboxError naming what failed and why.

Processes are spawned inside a namespace and stopped by the PID this process started (SIGTERM, then SIGKILL),
never looked up by name. Names are the caller's: ``unique`` makes a per-process tag so parallel runs never
collide, and ``ifname`` refuses an interface name the kernel would refuse (more than 15 characters).

Thread-safety: the functions keep no state (each netlink call opens and closes its own socket); ``in_netns``
runs its function on a fresh thread that enters the namespace, so the caller's thread (and the rest of the
process) never changes namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.exceptions import NetlinkError

from linker.errors import SandboxError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
IFNAMSIZ = 15  # the kernel's limit on an interface name, without the terminating NUL
TIMEOUT = 30.0
STOP_GRACE = 10.0
T = TypeVar("T")
_counter = itertools.count()


# --- names ---

def unique(name: str) -> str:
    """``name`` with this process's PID and a per-process counter: a tag no parallel run picks too."""
    return f"{name}{os.getpid() % 10000}{next(_counter)}"


def ifname(name: str) -> str:
    """``name`` itself; ValueError when it is too long to be an interface name."""
    if not name or len(name) > IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is not 1 to {IFNAMSIZ} characters long")
    return name


# --- commands ---

def run(argv: Sequence[str], input: str | None = None, check: bool = True, timeout: float = TIMEOUT,
        netns: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (inside ``netns`` if given); SandboxError when it fails (``check``) or outlives ``timeout``.

    Inside a namespace this is ``ip netns exec``: pyroute2 cannot exec a program, and ``ip netns exec`` also
    mounts a /sys of the namespace (tools read interfaces there) and execs in place (the PID is the program's)."""
    cmd = [*(["ip", "netns", "exec", netns] if netns else []), *argv]
    try:
        done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from None
    except FileNotFoundError:
        raise SandboxError(f"{cmd[0]} is not installed", fix="run: sudo bash scripts/setup") from None
    if check and done.returncode != 0:
        raise SandboxError(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return done


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``ip`` itself, for what the sandbox renders as ``ip`` command lines (policy rules, tables)."""
    return run(["ip", *(["-n", netns] if netns else []), *args], check=check)


def ip_json(*args: str, netns: str | None = None) -> list[dict[str, Any]]:
    out = ip("-j", *args, netns=netns).stdout.strip()
    return json.loads(out) if out else []


def ip_batch(commands: Sequence[str], netns: str | None = None) -> None:
    """Several ``ip`` commands in one process (``ip -batch``); stops at the first failure.

    The sandbox's router plan is text (pure, compared as text in its tests), so it is applied verbatim."""
    if commands:
        run(["ip", *(["-n", netns] if netns else []), "-batch", "-"], input="\n".join(commands) + "\n")


def sysctl(netns: str, settings: Mapping[str, str], check: bool = True) -> None:
    """Network sysctls are per namespace: set them inside ``netns`` (``check=False`` ignores a missing key, such
    as IPv6's on a kernel without it). Through ``sysctl`` because /proc/sys/net shows the namespace of whoever
    opens it, and a process inside is the plain way to be that."""
    run(["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())], check=check, netns=netns)


def nft(netns: str, ruleset: str) -> None:
    """Load ``ruleset`` into ``netns`` in one transaction (all of it or nothing).

    Through ``nft -f``: pyroute2's nftables support builds rules expression by expression and cannot load a
    ruleset written in nft's own language, which is what callers hold and what a person can read."""
    run(["nft", "-f", "-"], input=ruleset, netns=netns)


# --- namespaces ---

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
    # Not pyroute2's netns.create: it forks this Python process, and the copy inherits our signal handlers; the
    # SIGTERM pyroute2 ends it with could run the caller's own cleanup in the copy (the benchmark's did).
    ip("netns", "add", netns)
    try:
        link_up(netns, "lo")
    except BaseException:
        delete(netns)  # half made is not made: the caller never learns the name to remove it
        raise


def delete(netns: str) -> None:
    """Remove ``netns`` (its interfaces go with it, a veth's peer too). Never raises; one already gone is fine."""
    if exists(netns):
        with contextlib.suppress(OSError):
            pyroute2_netns.remove(netns)


# --- links, addresses, routes (netlink) ---

def netlink(netns: str | None, fn: Callable[[IPRoute], T], timeout: float = TIMEOUT) -> T:
    """``fn(ipr)`` with a netlink route socket inside ``netns`` (which must exist); its result. Netlink errors
    become SandboxError naming the namespace.

    The socket is opened by a thread that entered the namespace (``in_netns``), not by pyroute2's
    ``IPRoute(netns=...)``, which forks this process to open it (see ``add``)."""
    where = netns or "the root namespace"

    def work() -> T:
        with IPRoute() as ipr:
            try:
                return fn(ipr)
            except NetlinkError as exc:
                raise SandboxError(f"netlink in {where}: {exc.args[-1]} (error {exc.code})") from None

    if netns is None:
        return work()
    if not exists(netns):
        raise SandboxError(f"no network namespace {netns}")
    return in_netns(netns, work, timeout)


def _index(ipr: IPRoute, dev: str, netns: str | None) -> int:
    found = ipr.link_lookup(ifname=dev)
    if not found:
        raise SandboxError(f"no interface {dev} in {netns or 'the root namespace'}")
    return int(found[0])


def link_up(netns: str | None, dev: str, mtu: int | None = None) -> None:
    netlink(netns, lambda ipr: ipr.link("set", index=_index(ipr, dev, netns), state="up",
                                        **({"mtu": mtu} if mtu else {})))


def veth(ns_a: str, dev_a: str, ns_b: str, dev_b: str, up: bool = True) -> None:
    """A veth pair, ``dev_a`` in ``ns_a`` and ``dev_b`` in ``ns_b``; both ends up unless ``up`` is false."""
    peer = {"ifname": ifname(dev_b), "net_ns_fd": ns_b}  # pyroute2 opens /run/netns/<ns_b> itself (no fork)
    netlink(ns_a, lambda ipr: ipr.link("add", ifname=ifname(dev_a), kind="veth", peer=peer))
    if up:
        link_up(ns_a, dev_a)
        link_up(ns_b, dev_b)


def addr_add(netns: str | None, dev: str, cidr: str) -> None:
    """Add address ``cidr`` (``192.0.2.1/24``, ``fd00::1/64``) to ``dev``."""
    address, _, prefix = cidr.partition("/")
    length = int(prefix) if prefix else (128 if ":" in address else 32)
    netlink(netns, lambda ipr: ipr.addr("add", index=_index(ipr, dev, netns), address=address, prefixlen=length))


def route_add(netns: str | None, dst: str, via: str | None = None, dev: str | None = None,
              replace: bool = False) -> None:
    """A route to ``dst`` (a CIDR or ``default``) through gateway ``via`` and/or device ``dev``."""
    spec: dict[str, Any] = {}
    if dst != "default":
        spec["dst"] = dst
    elif via and ":" in via:
        spec["family"] = socket.AF_INET6  # a default route's family comes from its gateway
    if via:
        spec["gateway"] = via

    def add(ipr: IPRoute) -> None:
        ipr.route("replace" if replace else "add", **spec, **({"oif": _index(ipr, dev, netns)} if dev else {}))

    netlink(netns, add)


# --- processes ---

def spawn(argv: Sequence[str], netns: str | None = None, *, log: Path | None = None, capture: bool = False,
          env: Mapping[str, str] | None = None, cwd: Path | str | None = None, new_session: bool = False,
          preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen[Any]:
    """Start ``argv`` inside ``netns`` (``ip netns exec`` execs in place: the PID is the program's own).

    Output goes to ``log`` (appended), to pipes read as text when ``capture``, or nowhere. Stop it with ``stop``.
    """
    cmd = [*(["ip", "netns", "exec", netns] if netns else []), *argv]
    out: IO[bytes] | int = open(log, "ab") if log else subprocess.PIPE if capture else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.PIPE if capture and not log else subprocess.STDOUT,
                                text=capture and not log, env=None if env is None else dict(env), cwd=cwd,
                                start_new_session=new_session, preexec_fn=preexec_fn)
    finally:
        if log and not isinstance(out, int):
            out.close()  # the child holds its own copy


def stop(proc: subprocess.Popen[Any], grace: float = STOP_GRACE, sig: int = signal.SIGTERM) -> int:
    """Stop a process this process started: ``sig``, then SIGKILL after ``grace`` s. Returns its exit code;
    never raises for a process already gone."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return int(proc.returncode)


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


# --- threads inside a namespace ---

_libc = ctypes.CDLL(None, use_errno=True)


def _enter(netns: str) -> None:
    """Move the calling thread (only it: setns acts per thread) into ``netns``."""
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise SandboxError(f"cannot enter namespace {netns}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def in_netns(netns: str, fn: Callable[[], T], timeout: float = TIMEOUT) -> T:
    """``fn()`` run on a new thread inside ``netns`` (sockets it creates stay there); its result or exception."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            _enter(netns)
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
        _enter(netns)
        target()

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
