"""The link's lock, held in AWS: an SSM parameter created atomically (``Overwrite=False``) with a lease.

The lock lives in the link's lock region (the alphabetically first region of the run, see ``lock_region``), so
two runs over the same regions always contend for the same parameter. A lock whose lease has expired (a run that
crashed) is taken over with a warning; ``--force-unlock`` takes over a live one. Known limit: SSM deletes are not
conditional, so two runs taking over the same expired lock at the same instant could both proceed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from linker import naming
from linker.control.aws import Clients, cloud_call, error_code, is_not_found
from linker.errors import LinkerError, LockHeldError

log = logging.getLogger("linker.control")
DEFAULT_LEASE = 30 * 60.0


def lock_region(regions: Iterable[str]) -> str:
    return sorted(regions)[0]


@dataclass
class Lock:
    clients: Clients
    link: str
    region: str
    owner: str

    def release(self) -> None:
        """Delete the lock if it is still ours (a forced takeover may have replaced it).

        A failure is logged, not raised: the run's changes are made, and the lease ends the lock anyway."""
        ssm, name = self.clients.ssm(self.region), naming.lock_parameter(self.link)
        try:
            with cloud_call("release lock", self.region, name):
                try:
                    held = json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])
                    if held.get("owner") == self.owner:
                        ssm.delete_parameter(Name=name)
                except ClientError as exc:
                    if not is_not_found(exc):
                        raise
                except ValueError:
                    pass
        except LinkerError as err:
            log.warning("could not release the lock: %s; it expires with its lease, or use --force-unlock",
                        err.message, extra={"region": self.region, "resource": name})


def acquire(clients: Clients, link: str, region: str, command: str, lease: float = DEFAULT_LEASE,
            force: bool = False, now: float | None = None) -> Lock:
    """Take the link's lock or raise LockHeldError naming the holder and when its lease ends."""
    ssm, name = clients.ssm(region), naming.lock_parameter(link)
    owner = uuid.uuid4().hex
    t = time.time() if now is None else now
    value = json.dumps({"owner": owner, "host": socket.gethostname(), "pid": os.getpid(), "command": command,
                        "acquired": t, "expires": t + lease}, sort_keys=True)
    for _attempt in range(2):
        with cloud_call("acquire lock", region, name):
            try:
                ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=False,
                                  Description=f"lock of linker link {link}")
                return Lock(clients, link, region, owner)
            except ClientError as exc:
                if error_code(exc) != "ParameterAlreadyExists":
                    raise
            held = _read(ssm, name)
        if held is None:
            continue  # released between our put and our read: try again
        expired = float(held.get("expires", 0)) < t
        if not (expired or force):
            until = time.strftime("%H:%M:%S UTC", time.gmtime(float(held.get("expires", 0))))
            raise LockHeldError(
                f"link {link!r} is locked by `{held.get('command', '?')}` on {held.get('host', '?')} "
                f"(pid {held.get('pid', '?')}) until {until}",
                fix="wait for that run to finish; if it crashed, re-run with --force-unlock")
        log.warning("breaking the lock of %s held by %s (%s)", link, held.get("host"),
                    "lease expired" if expired else "--force-unlock", extra={"region": region, "resource": name})
        with cloud_call("break lock", region, name):
            try:
                ssm.delete_parameter(Name=name)
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
    raise LockHeldError(f"link {link!r}: could not take the lock (another run keeps taking it)",
                        fix="try again in a minute")


def _read(ssm: object, name: str) -> dict | None:
    try:
        return json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"])  # type: ignore[attr-defined]
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    except ValueError:
        return {"expires": 0}  # unreadable: treat as a crashed run's
