"""Token-bucket rate limiting, in memory, per source key (an IP, a phone number, an API key).

Each key has a bucket of ``burst`` tokens refilled at ``per_minute`` tokens a minute; a request
takes one token. When the bucket is empty the answer says how many whole seconds until the next
token, which is what ``Retry-After`` must carry.

The state lives in one process: with N intake processes behind a balancer a source gets up to N
times the limit. That is a documented choice (docs/channels.md): the limit exists to stop floods
and runaway clients, not to meter exactly, and it costs no database round trip per request.
"""

import math
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    burst: int
    per_minute: float

    @classmethod
    def parse(cls, text: str) -> "Limit":
        """``"30/60"``: 30 requests at once, refilled at 60 a minute; ``"30"``: burst = rate."""
        burst, _, rate = str(text).partition("/")
        limit = cls(int(burst), float(rate or burst))
        if limit.burst < 1 or limit.per_minute <= 0:
            raise ValueError(f"invalid rate limit {text!r}")
        return limit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds, >= 1 when refused


class RateLimiter:
    def __init__(self, max_keys: int = 50_000):
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated_at)
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def take(self, key: str, limit: Limit, now: float) -> Decision:
        rate = limit.per_minute / 60.0  # tokens per second
        with self._lock:
            tokens, updated = self._buckets.get(key, (float(limit.burst), now))
            tokens = min(float(limit.burst), tokens + max(0.0, now - updated) * rate)
            if tokens >= 1.0:
                self._store(key, tokens - 1.0, now)
                return Decision(True)
            self._store(key, tokens, now)
            return Decision(False, max(1, math.ceil((1.0 - tokens) / rate)))

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            # Forget the oldest half: a forgotten bucket is a full one, i.e. errs on accepting.
            for old in sorted(self._buckets, key=lambda k: self._buckets[k][1])[
                : self._max_keys // 2
            ]:
                del self._buckets[old]
        self._buckets[key] = (tokens, now)
