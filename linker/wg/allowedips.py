"""Cryptokey routing (whitepaper 2): a longest-prefix-match table from IP networks to peers.

A network belongs to at most one peer: inserting it for one peer takes it from any other, as WireGuard does.
Lookups index one dict per prefix length present, longest first, with a per-address cache in front for the hot
path; any change clears the cache.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHE_MAX = 4096


def parse_network(value: str | Network) -> Network:
    """``"10.0.0.1/24"`` -> 10.0.0.0/24 (host bits are cleared, as `wg` does)."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    return ipaddress.ip_network(value, strict=False)


class _Family(Generic[T]):
    __slots__ = ("bits", "by_length", "lengths")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.by_length: dict[int, dict[int, T]] = {}
        self.lengths: list[int] = []  # present prefix lengths, longest first

    def insert(self, net: Network, value: T) -> T | None:
        table = self.by_length.setdefault(net.prefixlen, {})
        key = int(net.network_address) >> (self.bits - net.prefixlen)
        old = table.get(key)
        table[key] = value
        self.lengths = sorted(self.by_length, reverse=True)
        return old

    def remove(self, net: Network) -> T | None:
        table = self.by_length.get(net.prefixlen)
        if not table:
            return None
        old = table.pop(int(net.network_address) >> (self.bits - net.prefixlen), None)
        if not table:
            del self.by_length[net.prefixlen]
            self.lengths = sorted(self.by_length, reverse=True)
        return old

    def lookup(self, addr: int) -> T | None:
        for length in self.lengths:
            value = self.by_length[length].get(addr >> (self.bits - length))
            if value is not None:
                return value
        return None


class AllowedIPs(Generic[T]):
    """Maps networks to values (peers). Not thread-safe."""

    def __init__(self) -> None:
        self._v4: _Family[T] = _Family(32)
        self._v6: _Family[T] = _Family(128)
        self._nets: dict[Network, T] = {}
        self._cache: dict[bytes, T | None] = {}
        # the cache's own get, for the packet paths: the value of an address looked up before, or None (looked up
        # with no value, or not yet: then ``lookup``). The dict is cleared in place, never replaced.
        self.cached = self._cache.get

    def insert(self, network: str | Network, value: T) -> None:
        net = parse_network(network)
        (self._v4 if net.version == 4 else self._v6).insert(net, value)
        self._nets[net] = value
        self._cache.clear()

    def remove(self, network: str | Network) -> None:
        net = parse_network(network)
        (self._v4 if net.version == 4 else self._v6).remove(net)
        self._nets.pop(net, None)
        self._cache.clear()

    def remove_value(self, value: T) -> None:
        for net in [n for n, v in self._nets.items() if v is value]:
            self.remove(net)

    def networks_of(self, value: T) -> list[Network]:
        return [n for n, v in self._nets.items() if v is value]

    def __iter__(self) -> Iterator[tuple[Network, T]]:
        return iter(list(self._nets.items()))

    def lookup(self, addr: bytes) -> T | None:
        """The value of the longest prefix containing ``addr`` (4 or 16 packed bytes), or None."""
        cache = self._cache
        try:
            return cache[addr]
        except KeyError:
            pass
        n = int.from_bytes(addr, "big")
        if len(addr) == 4:
            value = self._v4.lookup(n)
        elif len(addr) == 16:
            value = self._v6.lookup(n)
        else:
            return None
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[addr] = value
        return value
