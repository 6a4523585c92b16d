"""Per-source token buckets for handshake messages under load (as wireguard-go's ratelimiter).

IPv4 sources are limited per address, IPv6 per /64 (one host owns a /64). Entries idle for a second are dropped.
"""

from __future__ import annotations

import ipaddress

from linker.wg.constants import RATELIMIT_BURST, RATELIMIT_PACKETS_PER_SECOND

_COST = 1.0 / RATELIMIT_PACKETS_PER_SECOND
_MAX_TOKENS = _COST * RATELIMIT_BURST
_GC_INTERVAL = 1.0


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str | bytes, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._last_gc = float("-inf")

    def allow(self, host: str, now: float) -> bool:
        # an IPv4 source is its own key (the dotted text, as the socket gives it); IPv6 is limited per /64
        key: str | bytes = host if ":" not in host else ipaddress.ip_address(host).packed[:8]
        if now - self._last_gc > _GC_INTERVAL:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] <= _GC_INTERVAL}
            self._last_gc = now
        tokens, last = self._buckets.get(key, (_MAX_TOKENS, now))
        tokens = min(_MAX_TOKENS, tokens + (now - last))
        if tokens >= _COST:
            self._buckets[key] = (tokens - _COST, now)
            return True
        self._buckets[key] = (tokens, now)
        return False

    def __len__(self) -> int:
        return len(self._buckets)
