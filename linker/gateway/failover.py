"""Who of a site's two gateways is active, and when to take over: the failover core (docs/HA.md, rules 1-6, 8).

Sans-I/O, as ``wg.Device`` is: ``observe(observation)`` and ``tick(now)`` return the actions to take
(``linker.gateway.failover_events``), all at once; the core reads no clock and calls nothing. The agent calls
``tick`` at least every ``PROBE_INTERVAL`` and reports the outcome of every action it was given. AWS's route
tables are the arbiter: the gateway they all point at is the active one. Not thread-safe: one agent loop owns it.
"""

from __future__ import annotations

from enum import Enum

from linker.gateway.failover_events import (
    Action,
    ActiveRecordRead,
    Announce,
    DirectProbe,
    FailedOver,
    Observation,
    PlannedSwitch,
    ReadRoutes,
    RecordActive,
    RecordFailed,
    RecordWritten,
    RouteMoveFailed,
    RouteReadFailed,
    RoutesMoved,
    RouteView,
    StepDown,
    TakeOver,
    WitnessProbe,
)

PROBE_INTERVAL = 0.5  # seconds between probes (direct and through each witness)
HOLD = 3.0  # the active must be silent through the witnesses this long before the standby takes over
WITNESS_FRESH = 1.5  # a witness must have relayed this recently: the standby's own tunnels work
COOLDOWN = 60.0  # at most one switch per this many seconds per site (planned switches and no-owner claims aside)
ROUTE_POLL = 5.0  # seconds between reads of the route tables and the record
ROUTE_POLL_MAX = 30.0  # the read interval while AWS is unreachable (doubling from ROUTE_POLL)
READ_BACK = 1.0  # the read interval while a takeover is in progress
RETRY_FIRST = 1.0  # first retry of a failed ReplaceRoute or record write; doubling up to RETRY_MAX
RETRY_MAX = 10.0
ANNOUNCE_AFTER = (0.5, 1.0, 2.0, 4.0)  # repeats of a new announcement, seconds after the first
HEARTBEAT = 10.0  # then, while active, one announcement every HEARTBEAT seconds
PLANNED = "planned switch"  # the reason of a takeover the controller asked for


class Role(Enum):
    UNKNOWN = "unknown"  # no route view yet
    STANDBY = "standby"
    CLAIMING = "claiming"  # moving the routes to itself
    ACTIVE = "active"


class Failover:
    """The decision core of gateway ``instance`` of ``site``, whose other gateway is ``sibling``.

    ``role``: UNKNOWN until the first route view; ACTIVE while every route table points here (it announces, and
    keeps the record naming it); STANDBY otherwise (it watches the sibling and takes over, rules 3-5 and 8);
    CLAIMING while its ReplaceRoutes are under way (retried with backoff until they succeed or the sibling turns
    out to have taken unowned routes first).

    ``last_switch_at``: when the site last switched, if the agent knows it from before a restart (the active
    record's time on this clock), so that a restarted agent keeps the hysteresis.
    """

    def __init__(self, site: str, instance: str, sibling: str, last_switch_at: float | None = None) -> None:
        if instance == sibling:
            raise ValueError("a gateway is not its own sibling")
        self.site, self.instance, self.sibling = site, instance, sibling
        self.role = Role.UNKNOWN
        self.epoch: int | None = None  # this gateway's epoch while active and recorded
        self._targets: dict[str, str | None] = {}
        self._owner: str | None = None  # the instance every table points at, else None
        self._last_switch_at = last_switch_at
        self._record: tuple[str | None, int] = (None, 0)
        self._record_at: float | None = None
        self._read_due = float("-inf")
        self._read_out = False
        self._read_gap = ROUTE_POLL
        self._claim_reason = ""
        self._claim_from: str | None = None
        self._claim_retry: float | None = None
        self._claim_gap = RETRY_FIRST
        self._record_out = False
        self._record_retry: float | None = None
        self._record_gap = RETRY_FIRST
        self._announce_due: float | None = None
        self._announce_step = 0
        self._failover: tuple[float, str | None, str, float | None] | None = None  # at, previous, reason, last seen
        self._planned: PlannedSwitch | None = None
        self._seen_at: float | None = None  # the sibling last answered through a witness
        self._silent_since: float | None = None
        self._relay_at: float | None = None
        self._direct_ok: bool | None = None

    def set_sibling(self, sibling: str) -> None:
        """The site's other gateway is now ``sibling`` (a replacement, as the membership says): what was observed of
        the old one is dropped, so the new one must be seen silent for the whole hold before a takeover. The role,
        the epoch and the hysteresis stay."""
        if sibling == self.instance:
            raise ValueError("a gateway is not its own sibling")
        if sibling != self.sibling:
            self.sibling = sibling
            self._seen_at = self._silent_since = None
            self._direct_ok = None

    def seed_last_switch(self, at: float) -> None:
        """The site last switched at ``at`` (this clock), as the active record's time says after a restart: the
        hysteresis counts from there. Ignored once a switch is known (an observed one is the better evidence)."""
        if self._last_switch_at is None:
            self._last_switch_at = at

    @property
    def owner(self) -> str | None:
        """The instance all the site's route tables point at, as last read; None when none does."""
        return self._owner

    # --- observations ---

    def observe(self, obs: Observation) -> tuple[Action, ...]:
        """Take one observation; return the actions it calls for. Observations come in the order of their ``at``."""
        if isinstance(obs, WitnessProbe):
            self._witness(obs)
        elif isinstance(obs, DirectProbe):
            self._direct_ok = obs.answered
        elif isinstance(obs, RouteView):
            return self._route_view(obs)
        elif isinstance(obs, ActiveRecordRead):
            return self._record_read(obs)
        elif isinstance(obs, RouteReadFailed):
            self._read_out = False
            self._read_gap = min(self._read_gap * 2, ROUTE_POLL_MAX)
            self._read_due = obs.at + self._read_gap
        elif isinstance(obs, RoutesMoved):
            return self._routes_moved(obs.at)
        elif isinstance(obs, RouteMoveFailed):
            if self.role is Role.CLAIMING:
                self._claim_retry = obs.at + self._claim_gap
                self._claim_gap = min(self._claim_gap * 2, RETRY_MAX)
        elif isinstance(obs, RecordWritten):
            return self._record_written(obs)
        elif isinstance(obs, RecordFailed):
            self._record_out = False
            if self.role is Role.ACTIVE:  # a standby leaves the record to the route target
                self._record_retry = obs.at + self._record_gap
                self._record_gap = min(self._record_gap * 2, RETRY_MAX)
        elif isinstance(obs, PlannedSwitch):
            self._planned = obs
        else:
            raise TypeError(f"not an observation: {obs!r}")
        return ()

    def _witness(self, obs: WitnessProbe) -> None:
        if not obs.relayed:
            return  # says nothing about the sibling: only that this gateway cannot reach that witness
        self._relay_at = obs.at
        if obs.sibling_answered:
            self._seen_at = obs.at
            self._silent_since = None
        elif self._silent_since is None:
            self._silent_since = obs.at

    def _route_view(self, view: RouteView) -> tuple[Action, ...]:
        self._read_out = False
        self._read_gap = ROUTE_POLL
        self._read_due = view.at + (READ_BACK if self.role is Role.CLAIMING else ROUTE_POLL)
        self._targets = dict(view.targets)
        owners = set(self._targets.values())
        owner = owners.pop() if len(owners) == 1 else None
        if owner != self._owner:
            if owner is not None and self.role is not Role.UNKNOWN:
                self._last_switch_at = view.at  # a switch observed: the hysteresis counts from here
            self._silent_since = None  # evidence about the old arrangement does not carry over
        self._owner = owner
        if self.role is Role.CLAIMING:
            if owner == self.instance:
                return self._routes_moved(view.at)
            if owner == self.sibling and self._claim_from != self.sibling:
                self.role = Role.STANDBY  # the sibling claimed the unowned routes first: it won
                return (StepDown(owner, f"{owner} took the routes while this gateway was claiming them"),)
            return ()
        if self.role is Role.ACTIVE:
            if owner == self.instance:
                return self._reconcile(view.at)
            return self._step_down(view.at, owner)
        self.role = Role.ACTIVE if owner == self.instance else Role.STANDBY
        return self._reconcile(view.at) if self.role is Role.ACTIVE else ()

    def _step_down(self, at: float, owner: str | None) -> tuple[Action, ...]:
        self.role = Role.STANDBY
        self.epoch = None
        self._announce_due = None
        self._record_retry = None
        where = f"at {owner}" if owner else "at no single gateway"
        return (StepDown(owner, f"the route tables point {where}"),)

    def _record_read(self, obs: ActiveRecordRead) -> tuple[Action, ...]:
        self._record = (obs.instance, obs.epoch)
        self._record_at = obs.at
        if self.role is not Role.ACTIVE:
            return ()
        if obs.instance == self.instance:
            if self.epoch is None or obs.epoch > self.epoch:
                self.epoch = obs.epoch  # a restarted agent learns its epoch from its own record
                return self._start_announcing(obs.at)
            return ()
        # Another instance's record while the last view said "here": the view of this same read (it follows the
        # record's) decides, as the sibling writes its record only after its routes moved (docs/HA.md, rule 6).
        return ()

    def _reconcile(self, at: float) -> tuple[Action, ...]:
        """Active by a route view taken at ``at``: correct a record that names another instance, read before."""
        holder, epoch = self._record
        if self._record_at is None or self._record_out or self._record_retry is not None:
            return ()
        if holder == self.instance:
            if self.epoch is None:
                self.epoch = epoch
                return self._start_announcing(at)
            return ()
        self._record_out = True
        return (RecordActive(f"the record names {holder or 'no gateway'}; the routes point here"),)

    def _routes_moved(self, at: float) -> tuple[Action, ...]:
        if self.role is not Role.CLAIMING:
            return ()
        self.role = Role.ACTIVE
        self._owner = self.instance
        self._targets = dict.fromkeys(self._targets, self.instance)
        self._last_switch_at = at
        self._claim_retry = None
        self._read_due = at  # read back: the last ReplaceRoute wins, and it may not have been ours
        self._failover = (at, self._claim_from, self._claim_reason, self._seen_at)
        self._record_out = True
        self._record_retry = None
        return (RecordActive(self._claim_reason),)

    def _record_written(self, obs: RecordWritten) -> tuple[Action, ...]:
        self._record_out = False
        self._record_gap = RETRY_FIRST
        self._record_retry = None
        if self.role is not Role.ACTIVE:
            return ()  # stepped down meanwhile: the route target corrects the record (rule 6)
        self._record = (self.instance, obs.epoch)
        self._record_at = obs.at
        self.epoch = obs.epoch
        out = list(self._start_announcing(obs.at))
        if self._failover is not None:
            at, previous, reason, seen = self._failover
            gap = None if seen is None or reason == PLANNED else obs.at - seen
            out.append(FailedOver(at, self.site, previous, reason, obs.epoch, gap))
            self._failover = None
        return tuple(out)

    def _start_announcing(self, at: float) -> tuple[Action, ...]:
        assert self.epoch is not None
        self._announce_step = 0
        self._announce_due = at + ANNOUNCE_AFTER[0]
        return (Announce(self.site, self.instance, self.epoch),)

    # --- time ---

    def tick(self, now: float) -> tuple[Action, ...]:
        """What is due at ``now``: a read of the routes, a retry, an announcement, a takeover."""
        out: list[Action] = []
        if not self._read_out and now >= self._read_due:
            self._read_out = True
            out.append(ReadRoutes())
        if self.role is Role.ACTIVE:
            out += self._tick_active(now)
        elif self.role is Role.CLAIMING:
            if self._claim_retry is not None and now >= self._claim_retry:
                self._claim_retry = None
                out.append(TakeOver(self._tables_elsewhere(), self._claim_reason))
        elif self.role is Role.STANDBY:
            out += self._decide(now)
        return tuple(out)

    def _tick_active(self, now: float) -> list[Action]:
        out: list[Action] = []
        if self._record_retry is not None and now >= self._record_retry:
            self._record_retry = None
            self._record_out = True
            out.append(RecordActive(self._claim_reason or "retry"))
        if self._announce_due is not None and self.epoch is not None and now >= self._announce_due:
            self._announce_step += 1
            after = ANNOUNCE_AFTER[self._announce_step] - ANNOUNCE_AFTER[self._announce_step - 1] \
                if self._announce_step < len(ANNOUNCE_AFTER) else HEARTBEAT
            self._announce_due = now + after
            out.append(Announce(self.site, self.instance, self.epoch))
        return out

    def _tables_elsewhere(self) -> tuple[str, ...]:
        return tuple(sorted(t for t, target in self._targets.items() if target != self.instance))

    def _decide(self, now: float) -> list[Action]:
        if not self._targets:
            return []  # never read: nothing to move
        planned = self._planned
        if planned is not None:
            if planned.to != self.instance or planned.epoch < self._record[1]:
                self._planned = None  # for the sibling, or void: a switch happened since it was asked
            elif planned.epoch == self._record[1] and self._relay_fresh(now):
                self._planned = None
                return self._claim(now, PLANNED)
        owned = self._owner in (self.instance, self.sibling)
        if not owned and self.instance < self.sibling and self._relay_fresh(now):
            return self._claim(now, f"no gateway of the site owns the routes; {self.instance} has the lower id")
        if not self._sibling_silent(now):
            return []
        if owned and self._last_switch_at is not None and now - self._last_switch_at < COOLDOWN:
            return []  # hysteresis: at most one switch per COOLDOWN
        if self._direct_ok is False:
            reason = f"the active {self.sibling} is unreachable (directly and through the witnesses)"
        else:
            reason = f"the active {self.sibling}'s data plane is silent through the witnesses"
        return self._claim(now, reason)

    def _relay_fresh(self, now: float) -> bool:
        return self._relay_at is not None and now - self._relay_at <= WITNESS_FRESH

    def _sibling_silent(self, now: float) -> bool:
        """No witness has seen the sibling for HOLD, and a witness relayed recently (this gateway is not the one
        cut off)."""
        return self._silent_since is not None and now - self._silent_since >= HOLD and self._relay_fresh(now)

    def _claim(self, now: float, reason: str) -> list[Action]:
        self.role = Role.CLAIMING
        self._claim_reason = reason
        self._claim_from = self._owner
        self._claim_gap = RETRY_FIRST
        self._claim_retry = None
        self._read_due = min(self._read_due, now + READ_BACK)
        return [TakeOver(self._tables_elsewhere(), reason)]
