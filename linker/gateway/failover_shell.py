"""The agent's failover shell (docs/HA.md): the pure pieces wired to datagrams, AWS jobs and the peers.

``FailoverShell`` owns the decision core (``failover.Failover``), the prober and the relayer (``probing``) and the
receiving side (``actives.RemoteActives``). Its I/O is injected, so that it is tested with fakes and a fake clock:
``send(path, address, data)`` puts a datagram on one of the two agent sockets (``TUNNEL``: to a remote gateway's
tunnel address, through the tunnel; ``VPC``: to the sibling); ``submit(job)`` runs an AWS job (which may block for
seconds) off the loop, whose observations come back through a queue and are fed to the core at the next ``tick``
(stamped with that tick's time, so that the core sees them in order); ``notify(event)`` tells the agent about
``MoveSiteCidrs`` (apply the peers), ``FailedOver`` and ``StepDown``.

Thread-safety: ``received``, ``refused`` and ``tick`` are called by one loop only; ``set_view`` and ``recorded``
may be called from any thread (they are queued for that loop); ``role``, ``failovers`` and ``last_failover`` may
be read from any thread (each is one immutable value).
"""

from __future__ import annotations

import functools
import logging
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from linker.contract import MAX_REASON, FailoverRecord
from linker.errors import ContractError
from linker.gateway.actives import Ignored, MoveSiteCidrs, RemoteActives
from linker.gateway.cloud import ActiveRecord, CloudUnavailable
from linker.gateway.failover import Failover, Role
from linker.gateway.failover_events import (
    Action,
    ActiveRecordRead,
    Announce,
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
)
from linker.gateway.failover_wire import Announcement, FailoverWireError, decode, encode
from linker.gateway.ha_membership import HaView
from linker.gateway.probing import Prober, Relayer, Send

log = logging.getLogger("linker.gateway")

TUNNEL, VPC = "tunnel", "vpc"  # the two agent sockets: bound to the TUN device, and on the VPC interface


class FailoverCloud(Protocol):
    """What the shell asks of AWS (``linker.gateway.cloud.Cloud``); each call may raise CloudUnavailable."""

    def active_record(self, site: str | None = None, region: str | None = None) -> ActiveRecord: ...
    def write_active_record(self, instance: str) -> int: ...
    def switch_request(self) -> tuple[str, int] | None: ...
    def route_targets(self, instance: str, eni: str | None, sibling: str) -> tuple[tuple[str, str | None], ...]: ...
    def move_routes(self, tables: tuple[str, ...], instance: str, eni: str | None = None) -> None: ...


@dataclass(frozen=True)
class _Live:
    addresses: frozenset[str]


@dataclass(frozen=True)
class _Records:
    """Remote sites' active records read by the agent's membership poll (the slow path)."""

    records: Mapping[str, ActiveRecord]


Event = MoveSiteCidrs | FailedOver | StepDown


class FailoverShell:
    def __init__(self, view: HaView, cloud: FailoverCloud, send: Callable[[str, str, bytes], None],
                 submit: Callable[[Callable[[], None]], None], notify: Callable[[Event], None],
                 first_nonce: int, wall: Callable[[], float] = time.time, eni: str | None = None) -> None:
        self.view, self.eni = view, eni  # eni: this instance's primary interface, where routes point (None: unknown)
        self.cloud, self._send, self._submit, self._notify, self._wall = cloud, send, submit, notify, wall
        self.core = Failover(view.site, view.instance, view.sibling)
        self.prober = Prober(view.sibling_address, view.witnesses, first_nonce)
        self.relayer = Relayer(view.gateways, first_nonce + 2**62)
        self.actives = RemoteActives(view.link, view.remote)
        self._inbox: queue.SimpleQueue[tuple[Observation, ...] | HaView | _Records | _Live] = queue.SimpleQueue()
        self.role = "standby"
        self.failovers = 0
        self.last_failover: FailoverRecord | None = None
        self._seeded = False

    # --- from any thread ---

    def set_view(self, view: HaView) -> None:
        """The membership changed (a new sibling, witnesses, gateways): applied at the next tick."""
        self._inbox.put(view)

    def set_live(self, addresses: frozenset[str]) -> None:
        """The remote tunnel addresses with a live session (``Relayer.set_live``): applied at the next tick."""
        self._inbox.put(_Live(addresses))

    def recorded(self, records: Mapping[str, ActiveRecord]) -> None:
        """Remote sites' active records (site -> record), read with the membership: applied at the next tick."""
        self._inbox.put(_Records(dict(records)))

    # --- from the loop ---

    def received(self, path: str, data: bytes, source: str, now: float) -> None:
        """A datagram on one of the agent sockets. On the VPC one only the sibling is heard."""
        if path == VPC and source != self.view.sibling_address:
            return
        if path == TUNNEL:
            announcement = _announcement(data)
            if announcement is not None:
                self._event(self.actives.announced(announcement, source))
                return
        self._feed(self.prober.received(data, source, now))
        self._sends(self.relayer.received(data, source, now))

    def refused(self, path: str, payload: bytes, destination: str, now: float) -> None:
        """Port unreachable for our datagram ``payload`` to ``destination``: its host's kernel answered."""
        self._feed(self.prober.refused(payload, destination, now))
        self._sends(self.relayer.refused(payload, destination, now))

    def tick(self, now: float) -> None:
        """Feed AWS's answers and the membership's changes, expire and send probes, and run what the core asks."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, HaView):
                self._set_view(item)
            elif isinstance(item, _Live):
                self.relayer.set_live(item.addresses)
            elif isinstance(item, _Records):
                for site, record in sorted(item.records.items()):
                    if record.instance is not None:
                        self._event(self.actives.recorded(site, record.instance, record.epoch))
            else:
                for obs in item:
                    self._observe(replace(obs, at=now), now)
        out = self.prober.tick(now)
        self._sends(tuple(o for o in out if isinstance(o, Send)))
        self._feed(tuple(o for o in out if not isinstance(o, Send)))
        self._sends(self.relayer.tick(now))
        self._run(self.core.tick(now), now)

    def _set_view(self, view: HaView) -> None:
        self.view = view
        self.prober.sibling = view.sibling_address
        self.prober.set_witnesses(view.witnesses)
        self.relayer.set_gateways(view.gateways)
        self.actives.set_gateways(view.remote)
        self.core.set_sibling(view.sibling)

    def _feed(self, observations: tuple) -> None:
        for obs in observations:
            self._observe(obs, obs.at)

    def _observe(self, obs: Observation, now: float) -> None:
        if isinstance(obs, ActiveRecordRead) and not self._seeded:
            self._seeded = True  # a restarted agent keeps the hysteresis: from the record's time on this clock
            written_at = getattr(obs, "written_at", None)
            if written_at is not None:
                self.core.seed_last_switch(now - max(0.0, self._wall() - written_at))
        self._run(self.core.observe(obs), now)

    def _sends(self, sends: tuple[Send, ...]) -> None:
        for s in sends:
            self._send(VPC if s.address == self.view.sibling_address else TUNNEL, s.address, s.data)

    def _event(self, result: MoveSiteCidrs | Ignored) -> None:
        if isinstance(result, Ignored):
            log.debug("failover input ignored: %s", result.reason, extra={"site": result.site})
            return
        log.info("the site's CIDRs move to %s (epoch %d)", result.instance, result.epoch,
                 extra={"site": result.site, "resource": result.instance})
        self._notify(result)

    # --- the core's actions ---

    def _run(self, actions: tuple[Action, ...], now: float) -> None:
        for action in actions:
            if isinstance(action, ReadRoutes):
                self._job(self._read_routes, RouteReadFailed(0.0, "a bug"))
            elif isinstance(action, TakeOver):
                log.warning("taking over the site's routes: %s", action.reason,
                            extra={"site": self.view.site, "resource": self.view.instance})
                self._job(functools.partial(self._move_routes, action.tables), RouteMoveFailed(0.0, "a bug"))
            elif isinstance(action, RecordActive):
                self._job(self._write_record, RecordFailed(0.0, "a bug"))
            elif isinstance(action, Announce):
                data = encode(Announcement(self.view.link, action.site, action.instance, action.epoch))
                for address in sorted(set(self.view.witnesses.values())):
                    self._send(TUNNEL, address, data)
            elif isinstance(action, StepDown):
                log.warning("standby: %s", action.reason, extra={"site": self.view.site,
                                                                  "resource": self.view.instance})
                self._notify(action)
            elif isinstance(action, FailedOver):
                self._failed_over(action, now)
        self.role = "active" if self.core.role is Role.ACTIVE else "standby"

    def _failed_over(self, event: FailedOver, now: float) -> None:
        self.failovers += 1
        at = self._wall() - max(0.0, now - event.at)
        self.last_failover = FailoverRecord(at, event.reason[:MAX_REASON], event.previous, event.gap)
        gap = "unknown" if event.gap is None else f"{event.gap:.1f} s"
        log.warning("failed over: this gateway is the site's active one (epoch %d, from %s, gap %s): %s",
                    event.epoch, event.previous or "no gateway", gap, event.reason,
                    extra={"site": event.site, "resource": self.view.instance})
        self._notify(event)

    def _job(self, job: Callable[[], tuple[Observation, ...]], failed: Observation) -> None:
        """Run ``job`` through ``submit``; its observations come back through the inbox. A job that raises
        (a bug, or a reply AWS should not give) is logged loudly and reported as ``failed``: the core is told the
        outcome of every action it asked for, or it would wait for it forever."""
        def run() -> None:
            try:
                out = job()
            except Exception:
                log.exception("failover AWS job failed", extra={"site": self.view.site})
                out = (failed,)
            self._inbox.put(out)
        self._submit(run)

    # --- AWS jobs (run by ``submit``, maybe on another thread; they touch nothing but the cloud) ---

    def _read_routes(self) -> tuple[Observation, ...]:
        try:
            record = self.cloud.active_record()
        except (CloudUnavailable, ContractError) as exc:
            return (RouteReadFailed(0.0, str(exc)),)
        out: list[Observation] = [_RecordRead(0.0, record.instance, record.epoch, record.written_at)]
        try:
            switch = self.cloud.switch_request()
        except (CloudUnavailable, ContractError) as exc:
            log.debug("cannot read the switch record: %s", exc, extra={"site": self.view.site})
            switch = None
        if switch is not None:
            out.append(PlannedSwitch(0.0, switch[0], switch[1]))
        try:
            out.append(RouteView(0.0, self.cloud.route_targets(self.view.instance, self.eni, self.view.sibling)))
        except CloudUnavailable as exc:
            out.append(RouteReadFailed(0.0, str(exc)))
        return tuple(out)

    def _move_routes(self, tables: tuple[str, ...]) -> tuple[Observation, ...]:
        try:
            self.cloud.move_routes(tables, self.view.instance, self.eni)
        except CloudUnavailable as exc:
            log.warning("cannot move the site's routes: %s", exc, extra={"site": self.view.site})
            return (RouteMoveFailed(0.0, str(exc)),)
        return (RoutesMoved(0.0),)

    def _write_record(self) -> tuple[Observation, ...]:
        try:
            return (RecordWritten(0.0, self.cloud.write_active_record(self.view.instance)),)
        except CloudUnavailable as exc:
            log.warning("cannot write the active record: %s", exc, extra={"site": self.view.site})
            return (RecordFailed(0.0, str(exc)),)


@dataclass(frozen=True)
class _RecordRead(ActiveRecordRead):
    """The record as read, with its wall-clock time (which seeds the hysteresis of a restarted agent)."""

    written_at: float | None = None


def _announcement(data: bytes) -> Announcement | None:
    try:
        message = decode(data)
    except FailoverWireError:
        return None
    return message if isinstance(message, Announcement) else None
