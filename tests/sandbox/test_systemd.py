"""The sandbox's systemd on one host, without namespaces: a oneshot the agent's unit requires runs first, the agent
starts only once it succeeded, and not at all when it failed (the requests come from the systemctl stand-in)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from linker.sandbox.cloudview import Instance, Vpc
from linker.sandbox.hosts import REQUESTS, Host
from linker.sandbox.layout import Layout

BOOT = "[Unit]\nWants=network-online.target\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart={cmd}\n"
AGENT = ("[Unit]\nRequires=boot.service\nAfter=network-online.target boot.service\n"
         "[Service]\nExecStart=/bin/sleep 30\nRestart=always\n")


def host(tmp_path: Path) -> Host:
    enter = tmp_path / "enter"  # stands for nsenter into the host: drops --wd=/ and --, runs the rest here
    enter.write_text('#!/bin/sh\nshift 2\nexec "$@"\n')
    enter.chmod(0o755)
    instance = Instance("i-1", "running", "subnet-1", "eni-1", "10.10.1.5", False, (), ())
    vpc = Vpc("us-east-1", "vpc-1", 1, "10.10.0.0/16", None, (), (), (instance,), (), ())
    h = Host(Layout(tmp_path / "sandbox"), instance, vpc, "LKSBTEST")
    h.dir = tmp_path / "host"
    h.enter = lambda: [str(enter)]  # type: ignore[method-assign]
    return h


def ask(h: Host, unit: str, text: str, requires: dict[str, str]) -> None:
    path = h.dir / REQUESTS
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps({"op": "start", "unit": unit, "text": text, "requires": requires}) + "\n")


def run_until(h: Host, done: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, {n: s.record() for n, s in h.services.items()}
        h.tick(time.monotonic())
        time.sleep(0.05)


def test_the_agent_waits_for_its_bootstrap_then_runs(tmp_path: Path) -> None:
    h = host(tmp_path)
    flag = tmp_path / "bootstrapped"
    ask(h, "agent.service", AGENT, {"boot.service": BOOT.format(cmd=f"/bin/sh -c 'sleep 1; touch {flag}'")})
    h.tick(time.monotonic())
    assert h.services["boot.service"].state == "activating" and h.services["agent.service"].state == "waiting"
    try:
        run_until(h, lambda: h.services["agent.service"].pid is not None)
        assert flag.exists()  # it ran to its end before the agent started
        assert h.services["boot.service"].state == "active" and h.services["boot.service"].pid is None
        assert (h.dir / "run/.sandbox/units/agent.service").read_text() == "active\n"
        ask(h, "agent.service", AGENT, {"boot.service": BOOT.format(cmd="/bin/false")})  # start again: no-op
        h.tick(time.monotonic())
        assert h.services["boot.service"].state == "active" and h.services["agent.service"].restarts == 0
    finally:
        for s in h.services.values():
            s.stop()


def test_a_failed_bootstrap_keeps_the_agent_from_starting(tmp_path: Path) -> None:
    h = host(tmp_path)
    ask(h, "agent.service", AGENT, {"boot.service": BOOT.format(cmd="/bin/sh -c 'sleep 0.5; exit 3'")})
    h.tick(time.monotonic())
    run_until(h, lambda: h.services["agent.service"].state == "failed")
    assert h.services["boot.service"].state == "failed" and h.services["boot.service"].last_exit == 3
    assert h.services["agent.service"].process is None
    assert "boot.service failed" in (h.dir / "log" / "agent.service.log").read_text()


def test_a_required_unit_that_is_not_installed_fails_the_unit(tmp_path: Path) -> None:
    h = host(tmp_path)
    ask(h, "agent.service", AGENT, {})
    h.tick(time.monotonic())
    assert h.services["agent.service"].state == "failed" and h.services["agent.service"].process is None
