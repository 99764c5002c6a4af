"""Signed QR-poster tokens: which unit (and which spot in the office) a poster belongs to.

A token is ``<unit>.<location>.<signature>`` where the signature is the first 16 bytes of
HMAC-SHA256 over ``"qr1:<unit>:<location>"`` (base64url). It is short enough for a small QR code
and cannot be forged without the secret. A token that does not verify (tampered, foreign,
malformed) is simply not a token: the form opens without a preset unit, and the complaint is
never routed on its say-so.
"""

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SIG_BYTES = 16
MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True)
class PosterTarget:
    unit_code: str
    location: str


def _signature(secret: bytes, unit_code: str, location: str) -> str:
    mac = hmac.new(secret, f"qr1:{unit_code}:{location}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:_SIG_BYTES]).rstrip(b"=").decode()


def sign(secret: bytes, unit_code: str, location: str) -> str:
    """The token for a poster of ``unit_code`` at ``location`` (both slugs, e.g. ``ptsp``)."""
    for value in (unit_code, location):
        if not _SLUG.fullmatch(value):
            raise ValueError(f"not a slug: {value!r}")
    return f"{unit_code}.{location}.{_signature(secret, unit_code, location)}"


def verify(secret: bytes, token: object) -> PosterTarget | None:
    """The poster's unit and location, or None for anything that is not a genuine token."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    unit_code, location, signature = parts
    if not (_SLUG.fullmatch(unit_code) and _SLUG.fullmatch(location)):
        return None
    if not hmac.compare_digest(signature, _signature(secret, unit_code, location)):
        return None
    return PosterTarget(unit_code, location)
