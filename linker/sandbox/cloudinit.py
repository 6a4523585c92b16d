"""cloud-init's part on a sandbox host: ``python -m linker.sandbox.cloudinit [INSTANCE_ID]`` with the user-data on
stdin.

Runs inside the host (its network and mount namespaces). It records the instance id where cloud-init keeps it
(/var/lib/cloud/data/instance-id, which the gateway's bootstrap reads), writes the cloud-config's ``write_files`` and
runs its
``runcmd`` as cloud-init does: in order, each to its end even when one fails, with the output in
/var/log/cloud-init-output.log. Commands run for real; the distribution tools a sandbox host cannot run as such
(the package manager, systemctl, the AWS CLI, ...) are the sandbox's stand-ins, first on the PATH
(linker.sandbox.shims). Its output (the supervisor keeps it as the host's cloud-init-output.log) says what ran and
how it ended; the exit status is 0 only if every file was written and every command succeeded.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from linker.sandbox.userdata import CloudConfig, UserDataError, WriteFile, parse_user_data

COMMAND_TIMEOUT = 300.0
INSTANCE_ID = Path("/var/lib/cloud/data/instance-id")


def write_file(f: WriteFile) -> None:
    path = Path(f.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if f.append else os.O_TRUNC)
    fd = os.open(path, flags, f.permissions)
    try:
        os.write(fd, f.content)
    finally:
        os.close(fd)
    os.chmod(path, f.permissions)
    user, _, group = f.owner.partition(":")
    try:
        uid = pwd.getpwnam(user).pw_uid if user else -1
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError as exc:
        raise OSError(f"owner {f.owner!r} of {f.path}: {exc}") from None
    os.chown(path, uid, gid)


def run(config: CloudConfig, out: TextIO) -> int:
    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    failures = 0
    for key in config.unsupported:
        say(f"sandbox cloud-init: module {key!r} is not emulated; skipped")
    for f in config.write_files:
        try:
            write_file(f)
            say(f"wrote {f.path} ({len(f.content)} bytes, mode {f.permissions:04o})")
        except OSError as exc:
            failures += 1
            say(f"FAILED to write {f.path}: {exc}")
    for n, argv in enumerate(config.runcmd):
        say(f"runcmd[{n}]: {' '.join(argv)}")
        started = time.monotonic()
        try:
            done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=COMMAND_TIMEOUT, cwd="/")
            code = done.returncode
        except FileNotFoundError:
            code = 127
            say(f"{argv[0]}: command not found")
        except subprocess.TimeoutExpired:
            code = -1
            say(f"timed out after {COMMAND_TIMEOUT:.0f} s")
        say(f"runcmd[{n}]: exit {code} in {time.monotonic() - started:.1f} s")
        failures += code != 0
    say(f"sandbox cloud-init: finished with {failures} failure(s)")
    return 0 if failures == 0 else 1


def main(argv: list[str]) -> int:
    raw = sys.stdin.buffer.read()
    try:
        config = parse_user_data(raw)
    except UserDataError as exc:
        print(f"sandbox cloud-init: {exc}", flush=True)
        return 2
    if argv:
        INSTANCE_ID.parent.mkdir(parents=True, exist_ok=True)
        INSTANCE_ID.write_text(argv[0] + "\n")
    return run(config, sys.stdout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
