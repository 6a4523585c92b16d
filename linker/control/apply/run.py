"""Execute a plan through boto3: phase by phase, the regions of a phase in parallel (a thread each).

Each change goes to the handler its (action, kind) names in ``HANDLERS``, one table per AWS service (``ec2``,
``iam``, ``s3``, ``ssm``). Idempotent and tag-driven: every create tags atomically (TagSpecifications / Tags), a
create that finds its resource already there adopts it, and every delete treats NotFound as done, so a run that died
at any point is completed by the next ``up`` and cleaned by ``down``. Thread-safety: one ``Applier`` per run; the
resolved references are guarded by a lock, the boto3 clients are thread-safe.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from linker import naming
from linker.control.apply import ec2, iam, rollout, s3, ssm
from linker.control.apply.calls import SETTLE_DELAYS
from linker.control.aws import Clients, cloud_call
from linker.control.changes import Action, Change, Kind, Lower, Ref, by_phase
from linker.control.package import Package

log = logging.getLogger("linker.control")
Progress = Callable[[Change, str], None]
Handler = Callable[["Applier", Change], None]

HANDLERS: dict[tuple[Action, Kind], Handler] = {**ssm.HANDLERS, **s3.HANDLERS, **iam.HANDLERS, **ec2.HANDLERS,
                                                **rollout.HANDLERS}


class Applier:
    """Applies changes for one run. ``run_id`` seeds the ClientTokens, so a retried call within the run is
    deduplicated by AWS while a later run (after a ``down``) gets fresh instances."""

    def __init__(self, clients: Clients, link: str, run_id: str, progress: Progress | None = None,
                 max_workers: int = 8, poll: float = 2.0, timeout: float = 600.0,
                 package: Package | None = None) -> None:
        self.clients, self.link, self.run_id, self.package = clients, link, run_id, package
        self.progress = progress or (lambda change, status: None)
        self.max_workers, self.poll, self.timeout = max_workers, poll, timeout
        # backoff for a just-created resource not visible yet; tests that poll without waiting retry at once
        self.settle_delays = SETTLE_DELAYS if poll > 0 else (0.0,) * len(SETTLE_DELAYS)
        self._refs: dict[Ref, str] = {}
        self._lock = threading.Lock()

    def apply(self, changes: list[Change]) -> None:
        """Apply ``changes``; raises the first error of a phase after that phase's other regions finished
        (a CloudError for what AWS refused)."""
        for _phase, regions in by_phase(changes).items():
            workers = max(1, min(self.max_workers, len(regions)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(self._region, todo) for todo in regions.values()]
            errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:
                raise errors[0]  # type: ignore[misc]

    def _region(self, todo: list[Change]) -> None:
        for change in todo:
            handler = HANDLERS.get((change.action, change.kind))
            if handler is None:
                raise RuntimeError(f"no handler for {change.action} {change.kind}")  # a planner bug
            self.progress(change, "start")
            with cloud_call(f"{change.action} {change.kind}", change.region, change.target):
                handler(self, change)
            log.info("%s %s", change.action, change.kind, extra={"region": change.region, "resource": change.target})
            self.progress(change, "done")

    # --- references: values made by earlier changes ---

    def set_ref(self, kind: str, site: str, value: str) -> None:
        with self._lock:
            self._refs[Ref(kind, site)] = value

    def resolve(self, value: Any) -> Any:
        """``value``, a ``Ref`` replaced by what it refers to (RuntimeError when not made yet: a planner bug), a
        ``Lower`` by the value of its lower instance."""
        if isinstance(value, Lower):
            return value.pick(self.resolve)
        if isinstance(value, Ref):
            with self._lock:
                if value not in self._refs:
                    raise RuntimeError(f"{value} was not made by an earlier phase")  # a planner bug
                return self._refs[value]
        return value

    def known(self, value: Any) -> Any:
        """``value`` resolved, or None while what it refers to is not made yet (the seed phase)."""
        if isinstance(value, Lower):
            return value.pick(self.known)
        with self._lock:
            return self._refs.get(value) if isinstance(value, Ref) else value

    # --- what every create carries ---

    def tags(self, c: Change, role: str, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
        """The change's tags plus its role, in the shape the AWS APIs take."""
        tags = {**dict(c.param("tags", ())), naming.TAG_ROLE: role, **(extra or {})}
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def token(self, *parts: str) -> str:
        """A ClientToken unique to this run, link and ``parts``."""
        return hashlib.sha256(":".join((self.run_id, self.link, *parts)).encode()).hexdigest()[:64]
