"""Where the sandbox keeps its state on the machine, and the state record itself.

Everything lives in one root-only directory (default /run/linker-sandbox; ``LINKER_SANDBOX_DIR`` chooses another,
which also gets its own namespace prefix). ``state.json`` is written by the supervisor only, atomically: its PID
and start time, the endpoint, and every namespace and host it made, recorded before it makes them, so that a
sandbox whose supervisor died can still be removed from the record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linker.sandbox.addressing import API_ADDRESS, API_PORT, Names, prefix_for

DEFAULT_DIR = "/run/linker-sandbox"
ENV_DIR = "LINKER_SANDBOX_DIR"
STATE_VERSION = 2  # 2: the API's access key
SHIMS_AT = "/run/.sandbox/bin"  # where a host sees the stand-ins (linker.sandbox.hostinit binds them there)
HOST_PATH = f"{SHIMS_AT}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def names(self) -> Names:
        return Names(prefix_for(str(self.root), DEFAULT_DIR))

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def log_path(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def shims_dir(self) -> Path:
        return self.root / "shims"

    @property
    def hosts_dir(self) -> Path:
        return self.root / "hosts"

    def host_dir(self, instance_id: str) -> Path:
        return self.hosts_dir / instance_id

    def read_state(self, any_version: bool = False) -> dict[str, Any] | None:
        """The record, or None; one of another version (a sandbox of another linker) only with ``any_version``,
        for removing it: PIDs, namespaces and the directory read the same in every version."""
        try:
            doc = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        return doc if any_version or doc.get("version") == STATE_VERSION else None

    def write_state(self, doc: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({**doc, "version": STATE_VERSION}, f, indent=1, sort_keys=True)
        os.replace(tmp, self.state_path)


def current() -> Layout:
    return Layout(Path(os.environ.get(ENV_DIR) or DEFAULT_DIR))


def api_url() -> str:
    """The AWS endpoint as the sandbox's instances reach it."""
    return f"http://{API_ADDRESS}:{API_PORT}"


FAULTS_VARIABLE = "LINKER_SANDBOX_FAULTS"  # faults the stand-ins inject, for tests (linker.sandbox.shims)


def host_environment(access_key: str) -> dict[str, str]:
    """What every process of a sandbox host starts with. The credentials stand for the instance role's, which a
    real instance gets from its metadata service; the endpoint is the sandbox's AWS, across the sandbox internet.
    ``LINKER_SANDBOX_FAULTS`` of the sandbox's own environment is passed on (tests inject faults with it)."""
    faults = {FAULTS_VARIABLE: os.environ[FAULTS_VARIABLE]} if os.environ.get(FAULTS_VARIABLE) else {}
    return {**faults,
        "PATH": HOST_PATH, "LANG": "C.UTF-8", "HOME": "/root",
        "AWS_ENDPOINT_URL": api_url(), "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": "sandbox",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def write_shims(layout: Layout, python: str) -> None:
    """One small script per stand-in (linker.sandbox.shims), run by the controller's own interpreter."""
    from linker.sandbox.shims import NAMES

    layout.shims_dir.mkdir(mode=0o755, exist_ok=True)
    for name in NAMES:
        path = layout.shims_dir / name
        path.write_text(f"#!/bin/sh\nexec '{python}' -P -m linker.sandbox.shims {name} \"$@\"\n")
        path.chmod(0o755)
