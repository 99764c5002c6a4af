"""Accounts and sessions shared by every service.

One account store (routing's `accounts` table) serves PTSP officers, unit staff, the desk and
auditors. Any service authenticates a person through routing (RPC `routing.authenticate`) and
then issues a signed, stateless session cookie that every service verifies locally with the
shared secret `DUMAS_SESSION_SECRET`.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass

from shared.config import var_dir

# Who can do what is decided by the services; these are the roles they know.
ROLES: dict[str, str] = {
    "ptsp_officer": "Petugas PTSP",
    "unit_operator": "Operator unit",
    "unit_head": "Kepala unit",
    "desk_admin": "Admin Meja Dumas",
    "auditor": "Auditor",
}
# Roles tied to one unit (the others see across units).
UNIT_ROLES = frozenset({"unit_operator", "unit_head"})

SESSION_COOKIE = "dumas_session"
SESSION_LIFETIME = 8 * 3600  # one working day

_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def session_secret() -> bytes:
    """The signing secret; every service of one deployment must share it.

    `DUMAS_SESSION_SECRET` in production; on a developer machine without it, a random secret is
    created once in `<DUMAS_VAR_DIR>/session-secret` (mode 0600) and shared through that file.
    """
    configured = os.environ.get("DUMAS_SESSION_SECRET")
    if configured:
        return configured.encode()
    path = var_dir() / "session-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".session-secret.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_urlsafe(48).encode())
        try:
            os.link(tmp, path)  # atomic; loses quietly if another service was first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes().strip()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = encoded.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def burn_password_check() -> None:
    """Spend the time of one password check (unknown user names cost as much as wrong passwords)."""
    hashlib.scrypt(b"x", salt=b"0" * 16, **_SCRYPT)


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    unit_code: str | None
    display_name: str
    expires_at: int
    nonce: str  # per-session random value; the CSRF token is derived from it

    def can_see_unit(self, unit_code: str | None) -> bool:
        if self.role not in UNIT_ROLES:
            return True
        return unit_code is not None and unit_code == self.unit_code

    @property
    def role_name(self) -> str:
        return ROLES.get(self.role, self.role)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_session(
    username: str, role: str, unit_code: str | None, display_name: str,
    *, secret: bytes | None = None, lifetime: int = SESSION_LIFETIME, now: float | None = None,
) -> tuple[Session, str]:
    """A new session and its signed cookie value."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    session = Session(
        username=username,
        role=role,
        unit_code=unit_code,
        display_name=display_name,
        expires_at=int((now or time.time()) + lifetime),
        nonce=secrets.token_urlsafe(16),
    )
    payload = _b64(json.dumps(asdict(session), separators=(",", ":")).encode())
    return session, payload + "." + _sign(payload, secret or session_secret())


def read_session(token: str | None, *, secret: bytes | None = None,
                 now: float | None = None) -> Session | None:
    """The session in a cookie value, or None if missing, forged, malformed or expired."""
    if not token or "." not in token or len(token) > 4096 or not token.isascii():
        return None
    payload, signature = token.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(payload, secret or session_secret())):
        return None
    try:
        session = Session(**json.loads(_unb64(payload)))
    except (ValueError, TypeError):
        return None
    if session.expires_at < (now or time.time()) or session.role not in ROLES:
        return None
    return session


def csrf_token(session: Session, *, secret: bytes | None = None) -> str:
    """The anti-CSRF token forms of this session must carry."""
    return _sign("csrf:" + session.nonce, secret or session_secret())


def check_csrf(session: Session, token: str | None, *, secret: bytes | None = None) -> bool:
    # bytes: compare_digest refuses non-ASCII str (a hostile token must be refused, not raise)
    return bool(token) and hmac.compare_digest(
        token.encode(), csrf_token(session, secret=secret).encode())


def _sign(payload: str, secret: bytes) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
