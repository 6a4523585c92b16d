"""The agent's part in a link whose sites have two gateways (docs/HA.md).

``HaAgent`` starts the failover loop (``failover_io``) when the membership says that this instance is one of its
site's two gateways, hands it each new membership, and stops it when that is no longer so: a site with one gateway
runs no loop, opens no socket and behaves exactly as before. It keeps which gateway of each remote site holds that
site's CIDRs (``actives``: from announcements, through the loop, and from the remote sites' active records read
with each membership poll, the slow path) and re-applies the peers when that changes. It adds the gateway's role
and last failover to its health report, and failover metrics to the Prometheus text.

Thread-safety: ``poll`` and ``update`` are called by the agent's loop; ``actives`` is changed by the failover
thread and the agent's loop under ``lock`` (which the agent also holds while it applies peers); it is replaced,
never changed in place, so that it may be read without the lock.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable

from linker.contract import GatewayHealth, Membership
from linker.errors import ContractError
from linker.gateway import identity
from linker.gateway.actives import MoveSiteCidrs, RemoteActives
from linker.gateway.cloud import ActiveRecord, Cloud, CloudUnavailable
from linker.gateway.failover_events import FailedOver, StepDown
from linker.gateway.failover_io import AgentSockets, FailoverLoop
from linker.gateway.failover_shell import Event, FailoverShell
from linker.gateway.ha_membership import HaView, ha_view, remote_gateways
from linker.gateway.health import _label
from linker.gateway.settings import AgentSettings
from linker.gateway.wgctl import DeviceState
from linker.wg.constants import REJECT_AFTER_TIME

log = logging.getLogger("linker.gateway")


class HaAgent:
    def __init__(self, settings: AgentSettings, cloud: Cloud, apply: Callable[[], None],
                 loop_factory: Callable[[HaView], FailoverLoop] | None = None) -> None:
        self.settings, self.cloud, self._apply = settings, cloud, apply
        self.lock = threading.RLock()
        self.actives: dict[str, str] = {}  # remote site -> the instance whose peer holds its CIDRs
        self._remote = RemoteActives(settings.link, {})  # the slow path while no loop runs
        self._loop_factory = loop_factory or self._make_loop
        self.loop: FailoverLoop | None = None
        self._view: HaView | None = None
        self._counted = 0  # takeovers already put to CloudWatch

    # --- the agent's loop ---

    def update(self, membership: Membership, instance: str) -> None:
        """After each membership read: start, update or stop the failover loop."""
        view = ha_view(membership, self.settings.site, instance)
        gateways = remote_gateways(membership, self.settings.site)
        with self.lock:
            self._remote.set_gateways(gateways)
            self.actives = {s: i for s, i in self.actives.items() if i in gateways.get(s, {})}
        if view is None:
            if self.loop is not None:
                log.info("this gateway is no longer one of its site's two: failover stops",
                         extra={"site": self.settings.site, "resource": instance})
                self.stop()
            return
        if self.loop is None:
            log.info("one of the site's two gateways: failover starts (sibling %s)", view.sibling,
                     extra={"site": view.site, "resource": view.instance})
            self.loop = self._loop_factory(view)
            self.loop.start()
        elif view != self._view:
            self.loop.shell.set_view(view)
        self._view = view

    def poll(self, membership: Membership) -> None:
        """The slow path: read each remote site's active record (in its region) and apply it by the epoch rule.
        A region that cannot be read is skipped until the next poll. Blocks on AWS: the agent's loop calls it."""
        records: dict[str, ActiveRecord] = {}
        for site in remote_gateways(membership, self.settings.site):
            entry = membership.site(site)
            try:
                records[site] = self.cloud.active_record(site, entry.region if entry else None)
            except (CloudUnavailable, ContractError) as exc:
                log.warning("cannot read the active record of %s: %s", site, exc, extra={"site": self.settings.site})
        if self.loop is not None:
            self.loop.shell.recorded(records)
            return
        for site, record in sorted(records.items()):
            if record.instance is not None:
                result = self._remote.recorded(site, record.instance, record.epoch)
                if isinstance(result, MoveSiteCidrs):
                    self._move(result)

    def publish_failovers(self) -> None:
        """Put the takeovers since the last call to CloudWatch (with the health report). Raises CloudUnavailable
        (they are put with the next report then)."""
        if self.loop is None or self._view is None:
            return
        count = self.loop.shell.failovers
        if count > self._counted:
            self.cloud.put_failover_metric(self._view.instance, count - self._counted)
            self._counted = count

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()
            self.loop = None
            self._view = None
            self._counted = 0

    # --- the failover thread ---

    def _notify(self, event: Event) -> None:
        if isinstance(event, MoveSiteCidrs):
            self._move(event)
        elif isinstance(event, (FailedOver, StepDown)):
            pass  # logged by the shell; the role and the last failover are read by the health report

    def _move(self, move: MoveSiteCidrs) -> None:
        with self.lock:
            if self.actives.get(move.site) == move.instance:
                return
            self.actives = {**self.actives, move.site: move.instance}  # a new dict: readers never see one change
            self._apply()

    def _make_loop(self, view: HaView) -> FailoverLoop:
        s = self.settings
        eni = identity.interface_id(s) or None  # None: routes are moved by instance id

        def make_shell(send, submit) -> FailoverShell:  # type: ignore[no-untyped-def]
            return FailoverShell(view, self.cloud, send, submit, self._notify,
                                 int.from_bytes(os.urandom(8), "big"), eni=eni)

        return FailoverLoop(make_shell, lambda: AgentSockets.open(view.address, s.agent_port, s.interface))

    # --- health ---

    def sessions(self, state: DeviceState, now: float) -> None:
        """After each read of the daemon's peers (wall-clock ``now``): the remote gateways this one has a live
        session with (a handshake within REJECT_AFTER_TIME) are those it relays probes to (Relayer.set_live)."""
        if self.loop is None:
            return
        live = frozenset(ip.split("/")[0] for p in state.peers.values()
                         if p.last_handshake is not None and now - p.last_handshake < REJECT_AFTER_TIME
                         for ip in p.allowed_ips if ip.endswith("/32"))
        self.loop.shell.set_live(live)

    def decorate(self, health: GatewayHealth) -> GatewayHealth:
        """``health`` with this gateway's role and last failover while failover runs; unchanged otherwise."""
        if self.loop is None:
            return health
        shell = self.loop.shell
        return dataclasses.replace(health, role=shell.role, last_failover=shell.last_failover)

    def prometheus_text(self) -> str:
        """Failover metrics (empty while no failover runs): the role and the count of this gateway's takeovers."""
        if self.loop is None or self._view is None:
            return ""
        shell, view = self.loop.shell, self._view
        labels = f'link="{_label(view.link)}",site="{_label(view.site)}",instance="{_label(view.instance)}"'
        return "\n".join([
            "# HELP linker_gateway_active 1 if this gateway is its site's active one",
            "# TYPE linker_gateway_active gauge",
            f"linker_gateway_active{{{labels}}} {int(shell.role == 'active')}",
            "# HELP linker_failovers_total takeovers by this gateway since its agent started",
            "# TYPE linker_failovers_total counter",
            f"linker_failovers_total{{{labels}}} {shell.failovers}",
        ]) + "\n"
