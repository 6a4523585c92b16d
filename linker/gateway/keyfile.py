"""The gateway's private key: generated on first boot, on the instance only, mode 0600; never logged."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from linker.errors import KeyFileError
from linker.wg.keys import from_base64, generate_private_key, to_base64


def ensure_private_key(path: Path) -> bytes:
    """Read the key at ``path``, creating it (0600, in a 0700 directory) if it does not exist yet."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_private_key(path)
    key = generate_private_key(os.urandom)
    with os.fdopen(fd, "w") as f:
        f.write(to_base64(key) + "\n")
    return key


def read_private_key(path: Path) -> bytes:
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"private key {path} is readable by group or others (mode {st.st_mode & 0o777:o})",
                           f"chmod 600 {path}")
    try:
        return from_base64(path.read_text())
    except ValueError as exc:
        raise KeyFileError(f"private key {path} is malformed: {exc}", "generate one with `linker genkey`") from None
