"""What every command prints: rich tables for people, full values in logs, one JSON document with ``--json``."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# A width no table row reaches: when stdout is not a terminal (a CI log, a pipe, a file) rich would otherwise cut
# tables to 80 columns ("instan…", "203.0…"); tables are only as wide as their content, so nothing is padded.
UNBOUNDED_WIDTH = 100_000


def console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr): the terminal's width on a terminal, full values everywhere else."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=UNBOUNDED_WIDTH)


def emit(doc: dict[str, Any]) -> None:
    """The one JSON document of a ``--json`` run, on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
