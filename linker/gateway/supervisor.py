"""Runs `linker daemon` as a child and restarts it when it dies (with backoff), as systemd would."""

from __future__ import annotations

import logging
import os
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

    def ensure_running(self, now: float) -> bool:
        """Start the daemon if it is not running; True when it runs and its UAPI socket answers."""
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
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
