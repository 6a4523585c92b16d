"""A sandbox's life: start its supervisor (or find the running one), reach its AWS API, run commands on its hosts,
stop it, and remove whatever a dead one left behind.

The controller runs unchanged against a sandbox: ``Sandbox.target`` is an ordinary ``Target`` with the sandbox's
endpoint and a session that holds only the sandbox's own access key (the only one its API accepts). No profile,
config file or credential of the environment is read for it, so no real credential is ever sent anywhere, and the
process's environment is left as it is.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from linker.control.aws import Target
from linker.errors import SandboxError, UserError
from linker.sandbox import netns
from linker.sandbox.hosts import kill_namespace_processes
from linker.sandbox.layout import Layout, current, host_environment

START_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0
_BOTO = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
_NOT_FROM_ENVIRONMENT = (None, None, None, None)  # botocore session variable: no config key, no env var, no default


def isolated_session(access_key: str) -> boto3.session.Session:
    """A boto3 session that holds the sandbox's access key and reads no profile, config or credentials file and no
    credential variable of the environment (AWS_PROFILE naming a profile that does not exist does not break it)."""
    core = botocore.session.Session(session_vars={
        "profile": _NOT_FROM_ENVIRONMENT,
        "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None),
    })
    return boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key="sandbox",  # noqa: S106
                                 botocore_session=core)  # (moto checks no secret)


def _alive(state: dict[str, Any] | None) -> bool:
    return bool(state) and netns.alive(int(state["pid"]), state.get("started"))  # type: ignore[index]


class Sandbox:
    """A running sandbox, as its records show it. Methods that wait are bounded by their timeouts."""

    def __init__(self, layout: Layout, state: dict[str, Any]) -> None:
        self.layout, self.state = layout, state
        self.access_key = str(state["access_key"])
        self.session = isolated_session(self.access_key)

    # --- finding and starting ---

    @classmethod
    def existing(cls, layout: Layout | None = None) -> Sandbox | None:
        layout = layout or current()
        state = layout.read_state()
        return cls(layout, state) if _alive(state) and state and state.get("ready") else None

    @classmethod
    def start(cls, layout: Layout | None = None) -> Sandbox:
        """The running sandbox, or a new one (after removing what a dead one left)."""
        layout = layout or current()
        layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with (layout.root / "lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            found = cls.existing(layout)
            if found is not None:
                return found
            state = layout.read_state(any_version=True)  # a dead sandbox, or one of another linker version
            if state is not None:
                remove_leftovers(layout, state)
                layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            layout.root.chmod(0o700)
            with layout.log_path.open("ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "linker", "sandbox", "serve"],
                                        env={**os.environ, "LINKER_SANDBOX_DIR": str(layout.root)},
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd="/")
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                state = layout.read_state()
                if state and state.get("ready") and state.get("pid") == proc.pid:
                    return cls(layout, state)
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
            tail = _tail(layout.log_path)
            if proc.poll() is None:
                proc.terminate()
            raise SandboxError(f"the sandbox did not start: {tail or 'no output'}",
                               fix=f"the supervisor's log is {layout.log_path}")

    def refresh(self) -> dict[str, Any]:
        state = self.layout.read_state()
        if not _alive(state) or state is None:
            raise SandboxError("the sandbox's supervisor is gone",
                               fix="remove what is left with `linker down --sandbox`, then run `up` again")
        self.state = state
        return state

    @property
    def endpoint(self) -> str:
        return str(self.state["endpoint"])

    @property
    def target(self) -> Target:
        """Where the controller's calls go: this sandbox's endpoint, with a session that holds only its key."""
        return Target(None, self.endpoint, session_factory=lambda: isolated_session(self.access_key))

    def client(self, service: str, region: str) -> Any:
        return self.session.client(service, region_name=region, endpoint_url=self.endpoint, config=_BOTO)

    def regions(self) -> list[str]:
        return [r["region"] for _, r in sorted(self.refresh()["routers"].items(), key=lambda kv: int(kv[0]))]

    def links(self) -> list[str]:
        """Names of the links that have parameters in the sandbox."""
        names: set[str] = set()
        for region in self.regions():
            pages = self.client("ssm", region).get_paginator("get_parameters_by_path").paginate(
                Path="/linker", Recursive=True)
            names |= {p["Name"].split("/")[2] for page in pages for p in page["Parameters"]}
        return sorted(names)

    # --- the sandbox's VPCs ---

    # --- hosts ---

    def hosts(self, region: str | None = None, role: str | None = None,
              link: str | None = None) -> list[dict[str, Any]]:
        return [h for h in self.refresh()["hosts"].values()
                if (region is None or h["region"] == region) and (role is None or h["role"] == role)
                and (link is None or h.get("link") == link)]

    def workload(self, region: str) -> dict[str, Any]:
        found = self.hosts(region, "workload")
        if not found:
            known = ", ".join(self.regions()) or "none"
            raise UserError(f"the sandbox has no workload host in {region} (its regions: {known})",
                            fix="use one of its regions, or add this one with `linker up ... --sandbox`")
        return found[0]

    def enter(self, host: dict[str, Any]) -> list[str]:
        """The command prefix that runs something on ``host`` (its namespaces and its environment)."""
        if not host.get("init_pid") or not netns.alive(int(host["init_pid"]), host.get("init_started")):
            raise SandboxError(f"host {host['instance']} is not running")
        return ["nsenter", "-t", str(host["init_pid"]), "-m", "-n", "--wd=/", "--"]

    def run_on(self, host: dict[str, Any], argv: list[str], timeout: float = 120.0) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([*self.enter(host), *argv], capture_output=True, text=True, timeout=timeout,
                                  env=host_environment(self.access_key))
        except subprocess.TimeoutExpired:
            raise SandboxError(f"`{' '.join(argv)}` on {host['instance']} did not finish within {timeout:.0f} s") \
                from None

    # --- the link, seen from the hosts ---

    # --- stopping ---

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop the supervisor (it removes what it made); whatever is left after ``timeout`` is removed from its
        records. Returns the namespaces that were in the records."""
        state = self.layout.read_state(any_version=True) or self.state
        pid = int(state["pid"])
        if netns.alive(pid, state.get("started")):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while netns.alive(pid, state.get("started")) and time.monotonic() < deadline:
                time.sleep(0.1)
        remove_leftovers(self.layout, state)
        return list(state.get("namespaces", []))




def remove_leftovers(layout: Layout, state: dict[str, Any] | None) -> None:
    """What a sandbox's records name and still exists: its supervisor (by PID), namespaces, directory."""
    if state:
        pid = int(state.get("pid", 0))
        if pid and netns.alive(pid, state.get("started")):
            os.kill(pid, signal.SIGKILL)
        names = [*state.get("namespaces", []), *(h["netns"] for h in state.get("hosts", {}).values())]
        for name in reversed(list(dict.fromkeys(names))):
            if layout.names.owns(name) and netns.exists(name):
                kill_namespace_processes(name)
                netns.delete(name)
    shutil.rmtree(layout.root, ignore_errors=True)


def leftovers(layout: Layout, namespaces: list[str]) -> list[str]:
    """What of a removed sandbox still exists (for checks): namespaces and its directory."""
    left = [n for n in namespaces if netns.exists(n)]
    left += [n for n in netns.list_netns() if layout.names.owns(n) and n not in left]
    if layout.root.exists():
        left.append(str(layout.root))
    return left


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
