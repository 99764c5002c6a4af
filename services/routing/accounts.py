"""The account store: create accounts, authenticate with throttling against password guessing."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from services.routing.db import accounts
from shared.auth import ROLES, UNIT_ROLES, burn_password_check, hash_password, verify_password

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10


class AccountError(ValueError):
    pass


def create(
    session, username: str, display_name: str, role: str, password: str,
    unit_code: str | None = None, registry=None,
) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role in UNIT_ROLES and not unit_code:
        raise AccountError(f"role {role} needs a unit")
    if role not in UNIT_ROLES and unit_code:
        raise AccountError(f"role {role} is not tied to a unit")
    if registry is not None and unit_code and unit_code not in registry:
        raise AccountError(f"unknown unit {unit_code!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if session.execute(select(accounts.c.username).where(accounts.c.username == username)).first():
        raise AccountError(f"account {username!r} exists")
    session.execute(
        accounts.insert().values(
            username=username,
            display_name=display_name,
            role=role,
            unit_code=unit_code,
            password_hash=hash_password(password),
            active=True,
            failed_logins=0,
            created_at=datetime.now(UTC),
        )
    )


def authenticate(session, username: str, password: str, now: datetime | None = None) -> dict:
    """{"ok": True, account...} or {"ok": False, "reason": "invalid" | "locked"}.

    Five wrong passwords lock the account for 15 minutes; unknown names take as long to
    refuse as wrong passwords, so neither reveals which accounts exist.
    """
    now = now or datetime.now(UTC)
    row = session.execute(select(accounts).where(accounts.c.username == username)).first()
    if row is None or not row.active:
        burn_password_check()
        return {"ok": False, "reason": "invalid"}
    if row.locked_until is not None and row.locked_until > now:
        wait = int((row.locked_until - now).total_seconds())
        return {"ok": False, "reason": "locked", "retry_after": wait}
    if not verify_password(password, row.password_hash):
        failures = row.failed_logins + 1
        values = {"failed_logins": failures}
        if failures >= MAX_FAILURES:
            values = {"failed_logins": 0, "locked_until": now + LOCKOUT}
        session.execute(update(accounts).where(accounts.c.username == username).values(**values))
        return {"ok": False, "reason": "invalid"}
    session.execute(
        update(accounts).where(accounts.c.username == username)
        .values(failed_logins=0, locked_until=None)
    )
    return {
        "ok": True,
        "username": row.username,
        "display_name": row.display_name,
        "role": row.role,
        "unit_code": row.unit_code,
    }
