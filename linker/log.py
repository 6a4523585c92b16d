"""Logging setup: stderr, one line per event, stable ``key=value`` fields.

Log with ``log.info("handshake complete", extra={"peer": short, "endpoint": ep})``; the formatter appends
the fields in a fixed order so that people and scripts can grep them. Never log key material: peers are
named by a short prefix of their *public* key only.
"""

from __future__ import annotations

import logging
import sys

FIELDS = ("iface", "peer", "endpoint", "region", "site", "resource", "count", "reason")


class FieldFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname.lower():5} {record.name}: "
        msg = record.getMessage()
        extras = [f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None) is not None]
        line = base + msg + ("" if not extras else " " + " ".join(extras))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(level: str | int = "INFO") -> None:
    """Send linker's logs to stderr with stable fields. Safe to call more than once."""
    root = logging.getLogger("linker")
    root.setLevel(level if isinstance(level, int) else level.upper())
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldFormatter())
    root.addHandler(handler)
    root.propagate = False
