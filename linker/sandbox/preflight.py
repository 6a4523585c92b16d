"""Checks made before the sandbox builds anything: root, the tools it runs, and options that cannot apply to it."""

from __future__ import annotations

import os
import shlex
import shutil
import sys

from linker.errors import PrivilegeError, UserError

TOOLS = ("ip", "nft", "nsenter", "mount", "ping", "sysctl", "install")
START_HINT = "start one (as root) with: .venv/bin/linker up us-east-1 eu-west-1 --sandbox --yes"


def require_root() -> None:
    if os.geteuid() != 0:
        command = shlex.join([sys.argv[0], *sys.argv[1:]]) if sys.argv and sys.argv[0] else "linker ..."
        raise PrivilegeError("the sandbox builds network namespaces, which needs root",
                             fix=f"run it with sudo: sudo {command}")


def check_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise UserError(f"the sandbox needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                        "not installed", fix="run: bash scripts/setup")
    try:
        import moto.moto_server.werkzeug_app  # noqa: F401
    except ImportError:
        raise UserError("the sandbox needs moto's server (the embedded AWS endpoint), which is not installed",
                        fix="run: bash scripts/setup (or pip install 'linker[sandbox]')") from None


def refuse_targets(endpoint_url: str | None, profile: str | None) -> None:
    if endpoint_url:
        raise UserError("--sandbox runs its own AWS endpoint, so --endpoint-url (or LINKER_ENDPOINT_URL) cannot "
                        "be used with it", fix="drop --endpoint-url, or unset LINKER_ENDPOINT_URL")
    if profile:
        raise UserError("--sandbox uses no AWS account, so --profile cannot be used with it", fix="drop --profile")
