"""The values the failover core (``linker.gateway.failover``) takes and returns: observations in, actions out.

Every observation carries ``at``: the time the agent observed it, on the same monotonic clock it passes to
``Failover.tick`` (the core never reads a clock). Actions are orders for the agent's I/O; "nothing to do" is the
empty tuple. All are frozen values, thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- observations ---


@dataclass(frozen=True)
class RouteView:
    """One read of the site's route tables: for each table, the gateway instance its linker routes point at (the
    agent maps the target ENI to the instance); None when they point at no gateway of the site, at a blackhole, or
    disagree within the table."""

    at: float
    targets: tuple[tuple[str, str | None], ...]  # (route table id, instance or None)


@dataclass(frozen=True)
class RouteReadFailed:
    """DescribeRouteTables (or the record's read) failed: AWS unreachable, throttled, denied."""

    at: float
    error: str


@dataclass(frozen=True)
class RoutesMoved:
    """Every ReplaceRoute of the last ``TakeOver`` succeeded."""

    at: float


@dataclass(frozen=True)
class RouteMoveFailed:
    """At least one ReplaceRoute of the last ``TakeOver`` failed (the next view tells which tables moved)."""

    at: float
    error: str


@dataclass(frozen=True)
class ActiveRecordRead:
    """The site's active record as read from SSM: the instance it names and its version (the epoch); ``instance``
    None and ``epoch`` 0 when there is none. Read before the route tables of the same ``ReadRoutes``."""

    at: float
    instance: str | None
    epoch: int


@dataclass(frozen=True)
class RecordWritten:
    """The ``RecordActive`` write succeeded; SSM gave it version ``epoch``."""

    at: float
    epoch: int


@dataclass(frozen=True)
class RecordFailed:
    at: float
    error: str


@dataclass(frozen=True)
class DirectProbe:
    """A probe to the sibling over the VPC: answered by its agent or by its kernel (port unreachable)."""

    at: float
    answered: bool


@dataclass(frozen=True)
class WitnessProbe:
    """A probe to the sibling relayed by the agent of a remote gateway (``witness``, its site).

    ``relayed``: the witness answered this gateway (its own tunnel to the witness works). ``sibling_answered``
    (meaningful only when relayed): the sibling answered the witness's probe through its tunnel, by its agent or by
    its kernel."""

    at: float
    witness: str
    relayed: bool
    sibling_answered: bool = False


@dataclass(frozen=True)
class PlannedSwitch:
    """The controller's request (``linker failover``): ``to`` should become active. Void unless ``epoch`` is still
    the epoch of the site's active record (a switch since then voids it)."""

    at: float
    to: str
    epoch: int


Observation = (RouteView | RouteReadFailed | RoutesMoved | RouteMoveFailed | ActiveRecordRead | RecordWritten
               | RecordFailed | DirectProbe | WitnessProbe | PlannedSwitch)


# --- actions ---


@dataclass(frozen=True)
class ReadRoutes:
    """Read the site's active record, then its route tables. Report ``ActiveRecordRead`` then ``RouteView``; when a
    read fails, ``RouteReadFailed`` instead of what is left (a failed record read skips the tables). Every
    ReadRoutes gets its reports."""


@dataclass(frozen=True)
class TakeOver:
    """ReplaceRoute each of ``tables``' linker routes to this gateway, concurrently; report ``RoutesMoved`` or
    ``RouteMoveFailed``."""

    tables: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class RecordActive:
    """PutParameter (Overwrite) the site's active record naming this gateway; report ``RecordWritten`` with the
    version SSM returns, or ``RecordFailed``."""

    reason: str


@dataclass(frozen=True)
class Announce:
    """Send the announcement (``linker.gateway.failover_wire``) to the agent of every remote gateway."""

    site: str
    instance: str
    epoch: int


@dataclass(frozen=True)
class StepDown:
    """This gateway is standby now (``to``: the route target, None when no single gateway is): log it."""

    to: str | None
    reason: str


@dataclass(frozen=True)
class FailedOver:
    """This gateway became active (log line, metric, status's last failover). ``gap`` estimates how long traffic
    was cut: from the last sign of life of the previous active to the first announcement; None when unknown (the
    previous active was never seen, or a planned switch)."""

    at: float
    site: str
    previous: str | None
    reason: str
    epoch: int
    gap: float | None


Action = ReadRoutes | TakeOver | RecordActive | Announce | StepDown | FailedOver
