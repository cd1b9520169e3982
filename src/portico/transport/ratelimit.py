"""Per-key token buckets: `RateLimiter.take(key)` admits a request or says how long until it would be admitted.

Used at the HTTP edge (`identity.gate.Gate`, for anonymous callers of a public server, keyed by client address)
before a request body is read, so a refused request costs a dict lookup. A bucket holds up to `burst` tokens and
refills at `rate_per_s`; each request takes one. An address seen for the first time starts with a full bucket.

In process, per replica: N replicas admit up to N times the rate until the shared (Redis) store lands, the same
limit as the sign-in throttles (see docs/architecture.md). Memory is bounded: past `max_keys` the least recently
seen key is forgotten, which is the same as giving it a full bucket again; a flood of fresh addresses can only
reset addresses that were idle the longest.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets per key. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate_per_s must be > 0, burst and max_keys >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted); oldest-seen first

    def take(self, key: str) -> float:
        """Take one token for `key`: 0.0 when admitted, else the seconds until a token is available."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate_per_s)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate_per_s
        self._buckets[key] = (tokens, now)  # re-inserted: dict order is recency order
        if len(self._buckets) > self._max_keys:
            del self._buckets[next(iter(self._buckets))]
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def address_key(ip: str | None, ipv6_prefix: int) -> str:
    """The bucket key of a client address: an IPv4 address as is, an IPv6 address as its `/ipv6_prefix`
    network (one subscriber usually holds a whole /64, so per-address limits would not limit them), and every
    caller whose address is unknown in one shared bucket (fail closed rather than unlimited)."""
    if ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)
