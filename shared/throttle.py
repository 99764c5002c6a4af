"""Throttling of guessing: passwords at every sign-in, tracking codes at intake's lookups.

Two layers against password guessing (docs/security.md, "Throttling"):
- per account: routing's account store locks an account for 15 minutes after 5 wrong passwords
  (services/routing/accounts.py; in the database, so it holds across processes and restarts);
- per client address: here, a bucket of failures per IP in each process (`LOGIN_FAILURES_PER_IP`,
  default `20/900`: 20 failures, refilled at 20 per 900 seconds). Every failed attempt takes one;
  when none is left every attempt from that address (right password or not) is refused until one
  has refilled.

Either way the answer is 429 with `Retry-After` and an Indonesian message, and
`dumas_login_throttled_total{service, scope}` counts it (scope `ip` or `account`).
"""

import math
import os
import threading
import time
from dataclasses import dataclass

from prometheus_client import Counter

from shared.web import client_address

LOGIN_THROTTLED = Counter(
    "dumas_login_throttled_total",
    "Sign-in attempts refused with 429 against password guessing, by service and scope "
    "(ip: too many failures from one address; account: the account is locked).",
    ["service", "scope"],
)

DEFAULT_LOGIN_FAILURES_PER_IP = "20/900"


class FailureBuckets:
    """Per key, up to `burst` failures, refilled continuously at `burst` per `window` seconds.

    In memory, one per process: with N processes an address gets up to N times the allowance
    (the account lock in the database is the exact, shared limit).
    """

    def __init__(self, burst: int, window: float, clock=time.monotonic, max_keys: int = 50_000):
        if burst < 1 or window <= 0:
            raise ValueError("burst must be >= 1 and window > 0")
        self.burst = burst
        self.rate = burst / window  # tokens per second
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated_at)
        self._lock = threading.Lock()
        self._max_keys = max_keys

    @classmethod
    def parse(cls, text: str, **kw) -> "FailureBuckets":
        """``"20/900"``: 20 failures per 900 seconds."""
        burst, _, window = str(text).partition("/")
        return cls(int(burst), float(window or 60), **kw)

    def _tokens(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + max(0.0, now - updated) * self.rate)

    def wait(self, key: str) -> int:
        """Whole seconds until `key` may try again; 0 when it may now."""
        with self._lock:
            tokens = self._tokens(key, self._clock())
        return 0 if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) / self.rate))

    def fail(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            tokens = max(0.0, self._tokens(key, now) - 1.0)
            if key not in self._buckets and len(self._buckets) >= self._max_keys:
                # forget the oldest half: a forgotten bucket is a full one (errs on allowing)
                for old in sorted(self._buckets, key=lambda k: self._buckets[k][1])[
                        : self._max_keys // 2]:
                    del self._buckets[old]
            self._buckets[key] = (tokens, now)


@dataclass(frozen=True)
class Refusal:
    scope: str  # "ip" | "account"
    retry_after: int  # whole seconds, >= 1

    @property
    def message(self) -> str:
        return ("Terlalu banyak percobaan masuk. Silakan coba lagi dalam "
                f"{wait_text(self.retry_after)}.")

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def wait_text(seconds: int) -> str:
    """``45`` -> "45 detik", ``600`` -> "10 menit" (rounded up)."""
    return f"{seconds} detik" if seconds < 60 else f"{math.ceil(seconds / 60)} menit"


class LoginThrottle:
    """Use around `routing.authenticate`: `check` before, `record` after."""

    def __init__(self, service: str, per_ip: FailureBuckets, trust_proxy: bool = False):
        self.service = service
        self.per_ip = per_ip
        self.trust_proxy = trust_proxy

    def client_ip(self, request) -> str:
        return client_address(request, self.trust_proxy)

    def check(self, request) -> Refusal | None:
        """A refusal when the client's address has no failures left."""
        wait = self.per_ip.wait(self.client_ip(request))
        if wait:
            LOGIN_THROTTLED.labels(self.service, "ip").inc()
            return Refusal("ip", wait)
        return None

    def record(self, request, result: dict | None) -> Refusal | None:
        """Count a failed attempt; a refusal when the account is locked."""
        if result and result.get("ok"):
            return None
        self.per_ip.fail(self.client_ip(request))
        if result and result.get("reason") == "locked":
            LOGIN_THROTTLED.labels(self.service, "account").inc()
            return Refusal("account", max(1, int(result.get("retry_after") or 60)))
        return None


def _setting(config, name: str, default: str) -> str:
    value = config.get(name)
    if value in (None, ""):
        value = os.environ.get(name, default)
    return str(value)


def login_throttle(service: str, config) -> LoginThrottle:
    """The throttle of one service, from its config (or the environment)."""
    return LoginThrottle(
        service,
        FailureBuckets.parse(_setting(config, "LOGIN_FAILURES_PER_IP",
                                      DEFAULT_LOGIN_FAILURES_PER_IP)),
        trust_proxy=_setting(config, "TRUST_PROXY", "0") == "1",
    )
