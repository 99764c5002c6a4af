"""Partner API keys: each key belongs to one channel (Rumah Digital, the website, ...), has its
own rate limit and may carry a trusted unit target.

Configured with ``INTAKE_API_KEYS``: entries separated by ``;``, each
``channel:key[:limit][:unit_code]``, e.g.
``rumah_digital:6f3b...e1:120/120;website:9a0c...77`` (limit as in ratelimit.Limit.parse,
default ``60/60``). Keys are compared by their SHA-256 digest, in constant time.
"""

import hashlib
import hmac
from dataclasses import dataclass

from services.intake.domain.ratelimit import Limit
from shared.catalogue import CHANNELS

DEFAULT_LIMIT = "60/60"
MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class ApiClient:
    channel: str
    key_id: str  # first 8 hex digits of the key's digest: safe to log and to use as a bucket
    limit: Limit
    unit_code: str | None = None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    def __init__(self, spec: str | None):
        self._clients: list[tuple[bytes, ApiClient]] = []
        for raw in (spec or "").split(";"):
            raw = raw.strip()
            if not raw:
                continue
            parts = raw.split(":")
            if len(parts) < 2 or len(parts) > 4:
                raise ValueError("INTAKE_API_KEYS entry must be channel:key[:limit][:unit]")
            channel, key = parts[0], parts[1]
            if channel not in CHANNELS:
                raise ValueError(f"INTAKE_API_KEYS: unknown channel {channel!r}")
            if len(key) < MIN_KEY_LENGTH:
                raise ValueError(f"INTAKE_API_KEYS: key for {channel} shorter than 16")
            limit = Limit.parse(parts[2] if len(parts) > 2 and parts[2] else DEFAULT_LIMIT)
            unit = parts[3] if len(parts) > 3 and parts[3] else None
            digest = _digest(key)
            self._clients.append((digest, ApiClient(channel, digest.hex()[:8], limit, unit)))

    def lookup(self, key: str | None) -> ApiClient | None:
        if not key:
            return None
        digest = _digest(key)
        found = None
        for known, client in self._clients:  # no early exit: constant time per key list
            if hmac.compare_digest(known, digest):
                found = client
        return found
