"""The link's lock, held in AWS: SSM parameters created atomically (``Overwrite=False``), each with a lease.

Where: ``lock_link`` takes the lock in the regions ``home.lock_regions`` names, usually the link's home region
alone (home.py says how the home is chosen and recorded), so ``up A B``, ``up A C`` and ``down`` of one link take
the same lock. It re-reads the home records once it holds its locks, and starts again if they changed meanwhile.

Expiry is judged by AWS's clock, never this machine's: a lock's value carries its lease in seconds, and it expires
at the parameter's LastModifiedDate plus the lease, compared with the Date of the GetParameter response that read
it (both stamped by AWS). A client whose clock is an hour off neither takes over a live lock nor keeps a dead one.
A reply without a Date is taken as not expired (``--force-unlock`` then breaks the lock). An expired lock (a run
that crashed) is taken over with a warning; ``--force-unlock`` takes over a live one.

Renewal: while a run holds its locks, a daemon thread rewrites each one every third of the lease (a new version,
so a new LastModifiedDate); ``release`` stops the thread and waits for it before deleting the locks, so no renewal
can recreate a released lock. Thread-safety: a ``LinkLock`` is used by the thread that made it plus its renewal
thread; they share only the stop event and the ``lost`` flag (guarded by a lock); boto3 clients are thread-safe.

Known limits: SSM writes and deletes are not conditional. A takeover landing between a renewal's read and write is
overwritten by that write (the renewal sees the version jump and logs the lock as lost), and two runs taking over
the same expired lock at the same instant could both proceed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import ClientError

from linker import naming
from linker.control.aws import Clients, cloud_call, error_code, is_not_found
from linker.control.home import Records, choose_home, lock_regions
from linker.errors import LinkerError, LockHeldError

log = logging.getLogger("linker.control")
DEFAULT_LEASE = 30 * 60.0
ATTEMPTS = 3


@dataclass(frozen=True)
class Holder:
    """A lock as read from AWS: who holds it, and its lease on AWS's clock."""

    owner: str
    host: str
    pid: object
    command: str
    lease: float
    modified: datetime | None  # the parameter's LastModifiedDate
    aws_now: datetime | None  # the Date of the reply that read it

    @property
    def expires(self) -> datetime | None:
        return self.modified + timedelta(seconds=self.lease) if self.modified is not None else None

    @property
    def expired(self) -> bool:
        """Whether AWS's clock is past the lease; unknown (no Date or LastModifiedDate) is not expired."""
        expires = self.expires
        return expires is not None and self.aws_now is not None and self.aws_now > expires

    def describe(self, link: str) -> str:
        until = ""
        if self.expires is not None:
            until = f" until {time.strftime('%H:%M:%S UTC', time.gmtime(self.expires.timestamp()))}"
        return (f"link {link!r} is locked by `{self.command}` on {self.host} (pid {self.pid}){until} "
                f"by AWS's clock")


def aws_time(reply: dict[str, Any]) -> datetime | None:
    """The Date of an AWS reply (AWS's clock, to the second); None when the endpoint sent none."""
    date = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None


def read_holder(ssm: Any, name: str) -> Holder | None:
    """The lock ``name`` as AWS holds it, None when there is none. Raises ClientError for other failures."""
    try:
        reply = ssm.get_parameter(Name=name)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    param = reply["Parameter"]
    try:
        doc = json.loads(param["Value"])
        if not isinstance(doc, dict):
            raise ValueError
        # a lock of a linker before leases were kept as durations carries only "expires": the default lease
        lease = float(doc.get("lease", DEFAULT_LEASE))
    except (ValueError, TypeError):
        doc, lease = {}, 0.0  # unreadable: treat as a crashed run's
    return Holder(str(doc.get("owner", "")), str(doc.get("host", "?")), doc.get("pid", "?"),
                  str(doc.get("command", "?")), lease, param.get("LastModifiedDate"), aws_time(reply))


@dataclass
class Lease:
    """The lock of ``link`` in one region, held by ``owner``."""

    clients: Clients
    link: str
    region: str
    owner: str
    value: str

    def renew(self) -> bool:
        """Rewrite the lock so that its lease starts again; False when it is no longer ours (taken over, or a
        takeover landed during this renewal). Raises a LinkerError when AWS fails."""
        ssm, name = self.clients.ssm(self.region), naming.lock_parameter(self.link)
        with cloud_call("renew lock", self.region, name):
            try:
                param = ssm.get_parameter(Name=name)["Parameter"]
            except ClientError as exc:
                if is_not_found(exc):
                    return False
                raise
            try:
                if json.loads(param["Value"]).get("owner") != self.owner:
                    return False
            except (ValueError, AttributeError):
                return False
            version = ssm.put_parameter(Name=name, Value=_refreshed(self.value), Type="String",
                                        Overwrite=True)["Version"]
        return int(version) == int(param["Version"]) + 1

    def release(self) -> None:
        """Delete the lock if it is still ours (a forced takeover may have replaced it).

        A failure is logged, not raised: the run's changes are made, and the lease ends the lock anyway."""
        ssm, name = self.clients.ssm(self.region), naming.lock_parameter(self.link)
        try:
            with cloud_call("release lock", self.region, name):
                holder = read_holder(ssm, name)
                if holder is not None and holder.owner == self.owner:
                    ssm.delete_parameter(Name=name)
        except LinkerError as err:
            log.warning("could not release the lock: %s; it expires with its lease, or use --force-unlock",
                        err.message, extra={"region": self.region, "resource": name})


def _refreshed(value: str) -> str:
    doc = json.loads(value)
    # "expires" is read only by linkers older than AWS-clock leases (their own clock): keep them out
    doc["expires"] = time.time() + float(doc["lease"])
    return json.dumps(doc, sort_keys=True)


def acquire(clients: Clients, link: str, region: str, command: str, lease: float = DEFAULT_LEASE,
            force: bool = False, owner: str | None = None) -> Lease:
    """Take the link's lock in ``region`` or raise LockHeldError naming the holder and when its lease ends."""
    ssm, name = clients.ssm(region), naming.lock_parameter(link)
    owner = owner or uuid.uuid4().hex
    value = _refreshed(json.dumps({"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
                                   "command": command, "lease": lease}))
    for _attempt in range(ATTEMPTS):
        with cloud_call("acquire lock", region, name):
            try:
                ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=False,
                                  Description=f"lock of linker link {link}")
                return Lease(clients, link, region, owner, value)
            except ClientError as exc:
                if error_code(exc) != "ParameterAlreadyExists":
                    raise
            held = read_holder(ssm, name)
        if held is None:
            continue  # released between our put and our read: try again
        if held.owner == owner:
            return Lease(clients, link, region, owner, value)  # ours already (a retried put)
        _break(clients, link, region, held, force)
    raise LockHeldError(f"link {link!r}: could not take the lock (another run keeps taking it)",
                        fix="try again in a minute")


def _break(clients: Clients, link: str, region: str, held: Holder, force: bool) -> None:
    """Delete ``held`` when its lease expired or ``force``; LockHeldError otherwise."""
    if not (held.expired or force):
        raise LockHeldError(held.describe(link),
                            fix="wait for that run to finish; if it crashed, re-run with --force-unlock")
    name = naming.lock_parameter(link)
    log.warning("breaking the lock of %s in %s held by %s (%s)", link, region, held.host,
                "lease expired" if held.expired else "--force-unlock", extra={"region": region, "resource": name})
    with cloud_call("break lock", region, name):
        try:
            clients.ssm(region).delete_parameter(Name=name)
        except ClientError as exc:
            if not is_not_found(exc):
                raise


class LinkLock:
    """The locks one run holds (``regions``; usually the home alone), renewed in the background until released."""

    def __init__(self, leases: list[Lease], home: str, renew_every: float) -> None:
        self.leases, self.home = leases, home
        self.owner = leases[0].owner if leases else uuid.uuid4().hex
        self._stop = threading.Event()
        self._guard = threading.Lock()
        self._lost: list[str] = []
        self._thread = threading.Thread(target=self._renew, args=(renew_every,), name="linker-lock-renewal",
                                        daemon=True)
        self._thread.start()

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(lease.region for lease in self.leases)

    @property
    def lost(self) -> tuple[str, ...]:
        """The regions whose lock was taken over while this run held it."""
        with self._guard:
            return tuple(self._lost)

    def _renew(self, every: float) -> None:
        while not self._stop.wait(every):
            for lease in self.leases:
                if lease.region in self.lost:
                    continue
                try:
                    kept = lease.renew()
                except Exception as exc:  # a failed renewal is retried; the lease covers the gap
                    log.warning("could not renew the lock: %s", exc, extra={"region": lease.region})
                    continue
                if not kept:
                    with self._guard:
                        self._lost.append(lease.region)
                    log.error("the lock of %s in %s was taken over (--force-unlock by another run?); this run "
                              "goes on, but may now race that one", lease.link, lease.region,
                              extra={"region": lease.region, "resource": naming.lock_parameter(lease.link)})

    def release(self) -> None:
        """Stop renewing, then delete each lock still ours (failures are warnings, see ``Lease.release``)."""
        self._stop.set()
        self._thread.join()
        for lease in reversed(self.leases):
            lease.release()


def read_records(clients: Clients, link: str, regions: Iterable[str],
                 max_workers: int = 8) -> dict[str, tuple[str | None, bool]]:
    """{region: (the home recorded there, whether a lock exists there)}, read in parallel (GetParametersByPath
    on the link's own path, not recursive: its home, lock and membership, not the sites' documents)."""
    wanted = list(dict.fromkeys(regions))

    def one(region: str) -> tuple[str | None, bool]:
        ssm, path, token, found = clients.ssm(region), naming.parameter_prefix(link), None, {}
        with cloud_call("GetParametersByPath", region, path):
            while True:
                page = ssm.get_parameters_by_path(Path=path, Recursive=False,
                                                  **({"NextToken": token} if token else {}))
                found.update((p["Name"], p["Value"]) for p in page["Parameters"])
                token = page.get("NextToken")
                if not token:
                    break
        return found.get(naming.home_parameter(link)), naming.lock_parameter(link) in found

    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(wanted)))) as pool:
        return dict(zip(wanted, pool.map(one, wanted), strict=True))


def lock_link(clients: Clients, link: str, regions: Iterable[str], command: str, lease: float = DEFAULT_LEASE,
              force: bool = False, renew_every: float | None = None) -> LinkLock:
    """Take every lock a run over ``regions`` needs (``home.lock_regions``) or raise LockHeldError naming the
    holder; a lock left in another named region by a run that died is broken when expired (or ``force``)."""
    named = list(dict.fromkeys(regions))
    owner = uuid.uuid4().hex
    for _attempt in range(ATTEMPTS):
        before = read_records(clients, link, named)
        want = lock_regions(_homes(before), named)
        leases: list[Lease] = []
        try:
            for region in want:
                leases.append(acquire(clients, link, region, command, lease, force, owner))
            after = read_records(clients, link, named)
            if set(lock_regions(_homes(after), named)) <= set(want):
                for region, (_home, locked) in after.items():
                    if locked and region not in want:
                        with cloud_call("read lock", region, naming.lock_parameter(link)):
                            held = read_holder(clients.ssm(region), naming.lock_parameter(link))
                        if held is not None:
                            _break(clients, link, region, held, force)
                return LinkLock(leases, choose_home(_homes(after), named), renew_every or lease / 3)
        except BaseException:
            for taken in reversed(leases):
                taken.release()
            raise
        for taken in reversed(leases):  # the records changed while we locked: another run made the link
            taken.release()
    raise LockHeldError(f"link {link!r}: its home region kept changing while this run took its lock",
                        fix="try again in a minute")


def _homes(records: dict[str, tuple[str | None, bool]]) -> Records:
    return {region: home for region, (home, _locked) in records.items()}
