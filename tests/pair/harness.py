"""Two devices joined by an in-memory wire, driven by a fake clock. Deterministic: seeded randomness."""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from linker.wg.actions import Action, SendDatagram, WriteTun, flatten
from linker.wg.device import Device
from linker.wg.keys import generate_private_key

EP_A = ("192.0.2.1", 51820)
EP_B = ("198.51.100.2", 51820)
WALL_EPOCH = 1_800_000_000.0
FAST_PATHS = False  # default for Pair(fast=...): tests/pair/conftest.py runs every test both ways
DEADLINES = False  # default for Pair(deadlines=...): likewise


def ipv4_packet(src: str, dst: str, payload: bytes = b"ping", proto: int = 17) -> bytes:
    total = 20 + len(payload)
    return (bytes([0x45, 0]) + struct.pack(">H", total) + bytes(4) + bytes([64, proto, 0, 0])
            + ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed + payload)


@dataclass
class Clock:
    now: float = 100.0

    def wall(self) -> float:
        return WALL_EPOCH + self.now


@dataclass
class Wire:
    """Datagrams sent, in order, as (time, sender name, data, destination endpoint)."""

    log: list[tuple[float, str, bytes, tuple]] = field(default_factory=list)

    def sent_by(self, name: str, kind: int | None = None, size: int | None = None) -> list[tuple[float, bytes]]:
        out = []
        for t, who, data, _ in self.log:
            if who != name:
                continue
            if kind is not None and data[0] != kind:
                continue
            if size is not None and len(data) != size:
                continue
            out.append((t, data))
        return out


class Pair:
    """Device ``a`` (10.1.0.0/16 behind it) and device ``b`` (10.2.0.0/16) peered with each other."""

    def __init__(self, seed: int = 1, psk: bytes | None = None, keepalive_a: int = 0,
                 fast: bool | None = None, deadlines: bool | None = None) -> None:
        # fast: packets and transport messages go through seal_one/open_one first, as the daemon's loop sends
        # a lone packet, and through the general path only when those decline
        self.fast = FAST_PATHS if fast is None else fast
        # deadlines: ``advance`` moves the clock from one device's next_deadline() to the next, as the daemon's
        # loop sleeps, instead of ticking in small steps
        self.deadlines = DEADLINES if deadlines is None else deadlines
        self.clock = Clock()
        self.rand = random.Random(seed)
        self.wire = Wire()
        self.tun: dict[str, list[bytes]] = {"a": [], "b": []}
        self.drop: Callable[[str, bytes], bool] = lambda sender, data: False
        self.src_override: dict[str, tuple] = {}
        self.a = Device(generate_private_key(self.rand.randbytes), rng=self.rand.randbytes, wallclock=self.clock.wall)
        self.b = Device(generate_private_key(self.rand.randbytes), rng=self.rand.randbytes, wallclock=self.clock.wall)
        self.devices = {"a": self.a, "b": self.b}
        self.endpoints = {"a": EP_A, "b": EP_B}
        self.a.set_peer(self.b.public_key, self.clock.now, endpoint=EP_B, allowed_ips=["10.2.0.0/16"],
                        preshared_key=psk)
        self.b.set_peer(self.a.public_key, self.clock.now, endpoint=EP_A, allowed_ips=["10.1.0.0/16"],
                        preshared_key=psk)
        if keepalive_a:
            self.run("a", self.a.set_peer(self.b.public_key, self.clock.now, persistent_keepalive=keepalive_a))

    def other(self, name: str) -> str:
        return "b" if name == "a" else "a"

    def run(self, sender: str, actions: list[Action]) -> None:
        """Perform ``sender``'s actions; deliver datagrams to the other device at once (recursively)."""
        for action in flatten(actions):
            if isinstance(action, WriteTun):
                self.tun[sender].append(action.packet)
                continue
            assert isinstance(action, SendDatagram)
            self.wire.log.append((self.clock.now, sender, action.data, action.endpoint))
            if self.drop(sender, action.data):
                continue
            receiver = self.other(sender)
            assert action.endpoint == self.endpoints[receiver], "sent to the wrong endpoint"
            self.deliver(sender, action.data)

    def deliver(self, sender: str, data: bytes) -> None:
        """``data`` arrives at the other device from ``sender``'s endpoint (or its override)."""
        receiver = self.other(sender)
        device = self.devices[receiver]
        src = self.src_override.get(sender, self.endpoints[sender])
        if self.fast:
            before = device.next_deadline()
            packet = device.open_one(data, src, self.clock.now)
            if packet is not None:
                _within_lone_horizon(device, before, self.clock.now)
                if packet:
                    self.tun[receiver].append(packet)
                return
        self.run(receiver, device.decapsulate(data, src, self.clock.now))

    def send(self, sender: str, payload: bytes = b"ping") -> None:
        src, dst = ("10.1.0.1", "10.2.0.1") if sender == "a" else ("10.2.0.1", "10.1.0.1")
        packet = ipv4_packet(src, dst, payload)
        if self.fast:
            device = self.devices[sender]
            before = device.next_deadline()
            sealed = device.seal_one(packet, self.clock.now)
            if sealed is not None:
                _within_lone_horizon(device, before, self.clock.now)
                self.run(sender, [SendDatagram(*sealed)])
                return
        self.run(sender, self.devices[sender].encapsulate(packet, self.clock.now))

    def advance(self, seconds: float, step: float = 0.05) -> None:
        """Let ``seconds`` pass: tick both devices every ``step``, or (``deadlines``) at each next deadline only.
        Stepping, a tick before a device's deadline must do nothing: the deadline is never late."""
        end = self.clock.now + seconds
        while self.clock.now < end - 1e-9:
            if self.deadlines:
                due = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
                self.clock.now = min([end, *due]) if due else end
            else:
                self.clock.now = min(end, self.clock.now + step)
            for name in ("a", "b"):
                device = self.devices[name]
                due_at = device.next_deadline()
                early = due_at is None or self.clock.now < due_at
                before = _timer_state(device) if early else None
                actions = device.tick(self.clock.now)
                if early:
                    assert not actions and _timer_state(device) == before, "a tick before the deadline acted"
                self.run(name, actions)

    def peer(self, name: str):
        dev = self.devices[name]
        other = self.devices[self.other(name)]
        return dev.peers[other.public_key]

    def initiations(self, sender: str) -> list[float]:
        return [t for t, _ in self.wire.sent_by(sender, kind=1)]

    def keepalives(self, sender: str) -> list[float]:
        return [t for t, _ in self.wire.sent_by(sender, kind=4, size=32)]


def _timer_state(device: Device) -> list[tuple]:
    """Every peer's timers and sessions, to tell whether a tick changed anything."""
    return [(p.t_retransmit_handshake, p.t_send_keepalive, p.t_new_handshake, p.t_zero_key_material,
             p.t_persistent_keepalive, p.need_another_keepalive, p.current, p.previous, p.next)
            for p in device.peers.values()]


def _within_lone_horizon(device: Device, before: float | None, now: float) -> None:
    """What the daemon's loop counts on to skip the timers after a lone packet (loop.py): a lone path moved the
    next deadline no earlier than the deadline before it or ``now + lone_horizon``, whichever came first."""
    after = device.next_deadline()
    floor = now + device.lone_horizon if before is None else min(before, now + device.lone_horizon)
    assert after is None or after >= floor, f"a lone path armed a timer at {after - now:.3f} s"
