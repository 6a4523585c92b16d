"""A fake clock, a fake AWS and a fake network around two failover cores (linker.gateway.failover).

The simulation steps time by ``STEP`` and, at each step, lets each gateway whose agent runs take its probe results
(every PROBE_INTERVAL) and tick; it executes the actions at once against ``FakeAws`` (or fails them while the API
is unreachable or the gateway's host is cut off) and feeds the outcomes back. Announcements are delivered to a
remote gateway's ``RemoteActives`` when the sender's data plane works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from linker.gateway.actives import MoveSiteCidrs, RemoteActives
from linker.gateway.failover import PROBE_INTERVAL, Failover
from linker.gateway.failover_events import (
    Action,
    ActiveRecordRead,
    Announce,
    DirectProbe,
    Observation,
    ReadRoutes,
    RecordActive,
    RecordFailed,
    RecordWritten,
    RouteMoveFailed,
    RouteReadFailed,
    RoutesMoved,
    RouteView,
    TakeOver,
    WitnessProbe,
)
from linker.gateway.failover_wire import Announcement, decode, encode

STEP = 0.1
LINK, SITE, REMOTE = "prod", "us-east-1", "eu-west-1"
A, B = "i-0aaa", "i-0bbb"  # A has the lower instance id
ADDRESS = {A: "10.0.1.10", B: "10.0.2.10"}


@dataclass
class FakeAws:
    """The site's route tables (table -> instance) and its active record (instance, version)."""

    tables: dict[str, str | None]
    record: tuple[str | None, int] = (None, 0)
    api_up: bool = True
    switches: list[tuple[float, str]] = field(default_factory=list)  # (at, new owner) of each change of owner

    def owner(self) -> str | None:
        owners = set(self.tables.values())
        return owners.pop() if len(owners) == 1 else None

    def move(self, at: float, instance: str, tables: tuple[str, ...]) -> None:
        before = self.owner()
        for t in tables:
            self.tables[t] = instance
        if self.owner() != before and self.owner() is not None:
            self.switches.append((at, self.owner()))

    def write_record(self, instance: str) -> int:
        self.record = (instance, self.record[1] + 1)
        return self.record[1]


@dataclass
class Gateway:
    core: Failover
    host_up: bool = True  # its instance runs and its network works (kinds 1, 2)
    dataplane_up: bool = True  # its daemon forwards (kind 3)
    agent_up: bool = True  # its agent runs (kind 4)
    tunnels_up: bool = True  # its own tunnels to the witnesses work (an isolated standby)
    actions: list[tuple[float, Action]] = field(default_factory=list)

    def of(self, kind: type) -> list[tuple[float, Action]]:
        return [(t, a) for t, a in self.actions if isinstance(a, kind)]


class Sim:
    def __init__(self, tables: dict[str, str | None], record: tuple[str | None, int] = (None, 0)) -> None:
        self.now = 0.0
        self.aws = FakeAws(dict(tables), record)
        self.gw = {A: Gateway(Failover(SITE, A, B)), B: Gateway(Failover(SITE, B, A))}
        self.partitioned = False  # the two gateways cannot reach each other directly
        self.witness_agent_up = True
        self.remote = RemoteActives(LINK, {SITE: ADDRESS})
        self.moves: list[tuple[float, MoveSiteCidrs]] = []
        self.order = (A, B)
        self._next_probe = 0.0

    def restart_agent(self, name: str) -> None:
        """A new core for ``name``'s agent (its state is lost), as after a restart of the agent or the instance."""
        sibling = B if name == A else A
        self.gw[name].core = Failover(SITE, name, sibling)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + STEP, 6)
            probe = self.now >= self._next_probe - 1e-9
            if probe:
                self._next_probe = self.now + PROBE_INTERVAL
            for name in self.order:
                g = self.gw[name]
                if not g.agent_up:
                    continue
                if probe:
                    for obs in self._probes(name):
                        self._handle(name, g.core.observe(obs))
                self._handle(name, g.core.tick(self.now))

    def _probes(self, name: str) -> list[Observation]:
        me, sib = self.gw[name], self.gw[B if name == A else A]
        relayed = me.host_up and me.dataplane_up and me.tunnels_up and self.witness_agent_up
        # the sibling's agent answers, or its kernel (port unreachable) when its agent is dead: its host suffices
        answered = relayed and sib.host_up and sib.dataplane_up and sib.tunnels_up
        direct = me.host_up and sib.host_up and not self.partitioned
        return [DirectProbe(self.now, direct), WitnessProbe(self.now, REMOTE, relayed, answered)]

    def _api(self, name: str) -> bool:
        return self.aws.api_up and self.gw[name].host_up

    def _handle(self, name: str, actions: tuple[Action, ...]) -> None:
        g = self.gw[name]
        for action in actions:
            g.actions.append((self.now, action))
            for obs in self._execute(name, action):
                self._handle(name, g.core.observe(obs))

    def _execute(self, name: str, action: Action) -> list[Observation]:
        now, aws = self.now, self.aws
        if isinstance(action, ReadRoutes):
            if not self._api(name):
                return [RouteReadFailed(now, "unreachable")]
            return [ActiveRecordRead(now, *aws.record), RouteView(now, tuple(sorted(aws.tables.items())))]
        if isinstance(action, TakeOver):
            if not self._api(name):
                return [RouteMoveFailed(now, "unreachable")]
            aws.move(now, name, action.tables)
            return [RoutesMoved(now)]
        if isinstance(action, RecordActive):
            if not self._api(name):
                return [RecordFailed(now, "unreachable")]
            return [RecordWritten(now, aws.write_record(name))]
        if isinstance(action, Announce):
            g = self.gw[name]
            if g.host_up and g.dataplane_up and g.tunnels_up:
                datagram = encode(Announcement(LINK, action.site, action.instance, action.epoch))
                verdict = self.remote.announced(decode(datagram), ADDRESS[name])
                if isinstance(verdict, MoveSiteCidrs):
                    self.moves.append((now, verdict))
        return []

    def takeovers(self) -> list[tuple[str, float, Action]]:
        return sorted(((n, t, a) for n, g in self.gw.items() for t, a in g.of(TakeOver)), key=lambda x: x[1])


def healthy_pair(owner: str = A) -> Sim:
    """Two healthy gateways of SITE, ``owner`` the route target of both tables and named by the record (epoch 1)."""
    sim = Sim({"rtb-1": owner, "rtb-2": owner}, (owner, 1))
    sim.remote.recorded(SITE, owner, 1)
    sim.run(10)
    return sim
