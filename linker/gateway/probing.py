"""Probes of a site's gateways, sans-I/O (docs/HA.md, rule 4): the prober, the witness's relay and the responder.

- ``Prober`` (on each gateway of a two-gateway site): every PROBE_INTERVAL it sends its sibling a ``Probe`` over the
  VPC (the direct path) and asks each witness, the agent of a remote gateway, to relay one through the witness's
  tunnel (``RelayRequest``). It turns the replies, and their absence, into the failover core's ``DirectProbe`` and
  ``WitnessProbe`` observations.
- ``Relayer`` (on every gateway): answers probes from the link's gateways (``ProbeReply``), and relays a remote
  gateway's request to that gateway's sibling, answering ``RelayReply`` when the sibling answered or its relay
  timed out.

A probe reaches a gateway's agent; when the agent is dead, the gateway's kernel answers with ICMP port unreachable,
which the I/O reads from its socket's error queue (IP_RECVERR, with the datagram that caused it) and reports with
``refused``: that also means the gateway's data plane carried the probe. Both classes take datagrams, sources and
the time, and return what to send (``Send``) and, for the prober, observations; nonces are counters from a start the
caller draws at random. Hostile or stray datagrams are dropped silently. Not thread-safe: one agent loop owns each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from linker.gateway.failover import PROBE_INTERVAL
from linker.gateway.failover_events import DirectProbe, WitnessProbe
from linker.gateway.failover_wire import (
    FailoverWireError,
    Message,
    Probe,
    ProbeReply,
    RelayReply,
    RelayRequest,
    decode,
    encode,
)

DIRECT_TIMEOUT = 0.4  # over the VPC: a sub-millisecond RTT, so this is loss, not delay
RELAY_TIMEOUT = 0.6  # the witness's wait for the sibling: a cross-region RTT (up to ~350 ms) with room
REQUEST_TIMEOUT = 1.2  # the prober's wait for a witness: its own RTT to the witness plus RELAY_TIMEOUT
MAX_RELAYS = 256  # relays in flight on one witness: a bound on what requests (even authenticated ones) can hold
_DIRECT = ""  # the path of a direct probe in the prober's table (witness paths are named by their site)


@dataclass(frozen=True)
class Send:
    """Send ``data`` to the agent port of ``address`` (a tunnel address: through the tunnel; the sibling's: over
    the VPC)."""

    address: str
    data: bytes


def _decode(data: bytes) -> Message | None:
    try:
        return decode(data)
    except FailoverWireError:
        return None  # dropped: never answered, never fatal


def _next(nonce: int) -> int:
    return (nonce + 1) % 2**64


class Prober:
    """The probes of this gateway's ``sibling`` (its tunnel address, which is also its VPC address), directly and
    through ``witnesses`` (remote site -> the tunnel address of the gateway of that site asked to relay)."""

    def __init__(self, sibling: str, witnesses: Mapping[str, str], first_nonce: int) -> None:
        self.sibling = sibling
        self.witnesses = dict(witnesses)
        self._nonce = first_nonce % 2**64
        self._next_at = float("-inf")
        self._out: dict[int, tuple[str, float]] = {}  # nonce -> (path, sent at)

    def set_witnesses(self, witnesses: Mapping[str, str]) -> None:
        """After a membership change; requests in flight to a dropped witness simply expire."""
        self.witnesses = dict(witnesses)

    def _take_nonce(self, path: str, now: float) -> int:
        nonce = self._nonce
        self._nonce = _next(nonce)
        self._out[nonce] = (path, now)
        return nonce

    def tick(self, now: float) -> tuple[Send | DirectProbe | WitnessProbe, ...]:
        """Expire what was not answered in time; send the next round when due."""
        out: list[Send | DirectProbe | WitnessProbe] = []
        for nonce, (path, sent) in sorted(self._out.items(), key=lambda item: item[1][1]):
            if now - sent >= (DIRECT_TIMEOUT if path == _DIRECT else REQUEST_TIMEOUT):
                del self._out[nonce]
                out.append(DirectProbe(now, False) if path == _DIRECT else WitnessProbe(now, path, relayed=False))
        if now >= self._next_at:
            self._next_at = now + PROBE_INTERVAL
            out.append(Send(self.sibling, encode(Probe(self._take_nonce(_DIRECT, now)))))
            for site, address in sorted(self.witnesses.items()):
                out.append(Send(address, encode(RelayRequest(self._take_nonce(site, now), self.sibling))))
        return tuple(out)

    def received(self, data: bytes, source: str, now: float) -> tuple[DirectProbe | WitnessProbe, ...]:
        """A datagram from ``source`` on the agent's socket: a reply to one of this prober's probes, or nothing."""
        message = _decode(data)
        if isinstance(message, ProbeReply):
            return self._answered(message.nonce, _DIRECT, source, now, True)
        if isinstance(message, RelayReply):
            return self._answered(message.nonce, None, source, now, message.answered)
        return ()

    def refused(self, payload: bytes, destination: str, now: float) -> tuple[DirectProbe | WitnessProbe, ...]:
        """Port unreachable for our datagram ``payload`` sent to ``destination``: for a direct probe, the sibling's
        kernel answered (its agent is dead, its host is not); for a relay request, that witness cannot relay."""
        message = _decode(payload)
        if isinstance(message, Probe):
            return self._answered(message.nonce, _DIRECT, destination, now, True)
        if isinstance(message, RelayRequest):
            entry = self._out.get(message.nonce)
            if entry and entry[0] != _DIRECT and self.witnesses.get(entry[0]) == destination:
                del self._out[message.nonce]
                return (WitnessProbe(now, entry[0], relayed=False),)
        return ()

    def _answered(self, nonce: int, path: str | None, source: str, now: float,
                  answered: bool) -> tuple[DirectProbe | WitnessProbe, ...]:
        entry = self._out.get(nonce)
        if entry is None:
            return ()  # late, repeated or not ours
        sent_path = entry[0]
        if path == _DIRECT:
            if sent_path != _DIRECT or source != self.sibling:
                return ()
            del self._out[nonce]
            return (DirectProbe(now, True),)
        if sent_path == _DIRECT or self.witnesses.get(sent_path) != source:
            return ()
        del self._out[nonce]
        return (WitnessProbe(now, sent_path, relayed=True, sibling_answered=answered),)


class Relayer:
    """Answers probes and relays requests for the link's gateways: ``gateways`` is site -> {instance: tunnel
    address} for every site of the link, this one included (its sibling probes it directly)."""

    def __init__(self, gateways: Mapping[str, Mapping[str, str]], first_nonce: int) -> None:
        self._nonce = first_nonce % 2**64
        self._out: dict[int, tuple[str, int, str, float]] = {}  # our nonce -> (requester, its nonce, target, at)
        self._live: frozenset[str] | None = None  # None: not told yet, relay for every gateway
        self.set_gateways(gateways)

    def set_live(self, addresses: frozenset[str]) -> None:
        """The tunnel addresses this gateway has a live session with (a handshake within the last few minutes).
        A relay to any other target is not made: with no session, silence would say nothing about the target
        (a gateway whose peers this one has not configured yet, at boot), so the requester sees "cannot tell"."""
        self._live = addresses

    def set_gateways(self, gateways: Mapping[str, Mapping[str, str]]) -> None:
        self._site_of = {address: site for site, gws in gateways.items() for address in gws.values()}

    def received(self, data: bytes, source: str, now: float) -> tuple[Send, ...]:
        message = _decode(data)
        if source not in self._site_of:
            return ()  # only the link's gateways are answered: no reflection for anyone else
        if isinstance(message, Probe):
            return (Send(source, encode(ProbeReply(message.nonce))),)
        if isinstance(message, RelayRequest):
            return self._relay(message, source, now)
        if isinstance(message, ProbeReply):
            return self._done(message.nonce, source, True)
        return ()

    def _relay(self, request: RelayRequest, source: str, now: float) -> tuple[Send, ...]:
        target = request.target
        if target == source or self._site_of.get(target) != self._site_of[source]:
            return ()  # a gateway may only ask about its own sibling
        if len(self._out) >= MAX_RELAYS or (self._live is not None and target not in self._live):
            return ()  # the requester sees a timeout: "cannot tell", never "silent"
        nonce = self._nonce
        self._nonce = _next(nonce)
        self._out[nonce] = (source, request.nonce, target, now)
        return (Send(target, encode(Probe(nonce))),)

    def refused(self, payload: bytes, destination: str, now: float) -> tuple[Send, ...]:
        """Port unreachable for our ``payload`` sent to ``destination``: for a relayed probe, the target's kernel
        answered through its tunnel (its agent is dead, its data plane is not)."""
        message = _decode(payload)
        if isinstance(message, Probe):
            return self._done(message.nonce, destination, True)
        return ()

    def _done(self, nonce: int, target: str, answered: bool) -> tuple[Send, ...]:
        entry = self._out.get(nonce)
        if entry is None or entry[2] != target:
            return ()
        del self._out[nonce]
        requester, their_nonce, _, _ = entry
        return (Send(requester, encode(RelayReply(their_nonce, answered))),)

    def tick(self, now: float) -> tuple[Send, ...]:
        """Relays whose target did not answer within RELAY_TIMEOUT: tell their requesters it was silent."""
        expired = [n for n, (_, _, _, at) in self._out.items() if now - at >= RELAY_TIMEOUT]
        out = []
        for nonce in expired:
            requester, their_nonce, _, _ = self._out.pop(nonce)
            out.append(Send(requester, encode(RelayReply(their_nonce, False))))
        return tuple(out)
