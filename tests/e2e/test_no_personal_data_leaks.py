"""Secrets and personal data never reach logs, events or the other services' databases.

The four services run as processes with a session secret and a data key set. Capture queues are
bound to every `<service>.events` exchange before anything is submitted; complaints with
distinctive names, phone numbers and e-mail addresses go in through intake (public and
confidential) and are followed until routed and notified. Then every captured message (body and
headers), every line of every service log, and every row of routing's, notification's and
reporting's databases is searched for the personal data (in every normalisation) and the secrets.
The only places personal data may be are intake's database and the notification outbox files
(that is the delivery itself).
"""

import json
import re

import pytest
from sqlalchemy import MetaData, Table, create_engine, inspect, select
from support import amqp
from support.wait import wait_for

pytestmark = pytest.mark.e2e

SESSION_SECRET = "rahasia-sesi-9c4e1f7a2b6d-jangan-bocor"
DATA_KEY = "QmFzZTY0S2V5VW50dWtQZW5ndWppYW5EdW1hczEyMzQ="  # Fernet-shaped: 32 bytes, base64
MERIGI = "17.08.05"  # kua-merigi is pilot: it gets the complaint and a notification
EXCHANGES = ("intake", "routing", "notification", "reporting", "channels")

PEOPLE = [
    # (name, phone as typed, its E.164 form, e-mail as typed, confidentiality)
    ("Wulandari Prasetyaningsih", "0812-7719-3346", "+6281277193346",
     "Wulan.Prasetya@Contoh.ID", "public"),
    ("Zulkarnain Hasibuan", "+62 857 3310 2298", "+6285733102298",
     "zulkarnain.hsb@contoh.id", "confidential"),
    ("Rahmawati Sulistyorini", "0813 6024 1187", "+6281360241187", None, "public"),
]


def needles() -> dict[str, str]:
    """Every form in which the test's personal data or secrets could show up, lower-case."""
    found: dict[str, str] = {}
    for name, typed, e164, email, _ in PEOPLE:
        found[name.lower()] = f"name of {name}"
        for part in name.split():
            found[part.lower()] = f"part of the name {name}"
        digits = re.sub(r"\D", "", typed)
        national = e164[3:]
        for form in {typed, e164, e164[1:], "0" + national, national, digits}:
            found[form.lower()] = f"phone {e164} as {form!r}"
        if email:
            found[email.lower()] = f"e-mail {email}"
            found[email.split("@")[0].lower()] = f"local part of {email}"
    found[SESSION_SECRET.lower()] = "DUMAS_SESSION_SECRET"
    found[DATA_KEY.lower()] = "INTAKE_DATA_KEY"
    return found


def leaks(text: str, where: str) -> list[str]:
    lowered = text.lower()
    return [f"{what} in {where}" for needle, what in needles().items() if needle in lowered]


@pytest.fixture
def service_env(service_env):
    """The e2e environment (conftest.py), plus the secrets this test looks for."""
    return {**service_env, "DUMAS_SESSION_SECRET": SESSION_SECRET, "INTAKE_DATA_KEY": DATA_KEY}


@pytest.fixture
def captures(amqp_uri, cluster):
    # Bound once the services have declared their topology, before anything is submitted.
    return [amqp.Capture(amqp_uri, f"{name}.events", "#") for name in EXCHANGES]


def complaint(name, phone, email, confidentiality):
    person = {"name": name, "phone": phone}
    if email:
        person["email"] = email
    return {
        "category": "nikah_rujuk",
        "kecamatan_code": MERIGI,
        "description": "Pendaftaran nikah kami sudah dua minggu belum diproses, mohon dibantu.",
        "confidentiality": confidentiality,
        "complainant": person,
    }


def table_dump(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            lines = []
            for table_name in inspect(conn).get_table_names():
                table = Table(table_name, MetaData(), autoload_with=conn)
                lines += [f"{table_name}: {tuple(row)}" for row in conn.execute(select(table))]
            return "\n".join(lines)
    finally:
        engine.dispose()


def test_no_personal_data_or_secret_in_any_event_log_line_or_other_database(
    dumas, captures, cluster, pg_urls
):
    codes = {}
    for name, phone, _, email, confidentiality in PEOPLE:
        codes[dumas.submit_accepted(complaint(name, phone, email, confidentiality))] = email

    # Routed, and every intended message written: one to the unit and one to the complainant.
    for code in codes:
        wait_for(lambda code=code: dumas.track(code)["status"] == "routed", timeout=30,
                 message=f"{code} routed")
    wait_for(
        lambda: all(
            len([m for m in dumas.outbox_messages() if code in m["text"]]) >= 2 for code in codes
        ),
        timeout=30,
        message="unit and complainant messages written for every complaint",
    )
    sent = wait_for(
        lambda: (
            events := [
                body for capture in captures for body, _ in capture.drain()
                if isinstance(body, dict) and body.get("event_type") == "notification_sent"
            ]
        ) and len(events) >= 2 * len(codes) and events,
        timeout=30,
        message="notification_sent events published",
    )
    assert len(sent) >= 2 * len(codes)

    # The delivery itself does carry the contact (that is the point of it): sanity-check that
    # the test would see personal data if it were there.
    outbox_text = json.dumps(dumas.outbox_messages(), ensure_ascii=False)
    assert leaks(outbox_text, "outbox"), "the outbox should hold the deliveries' addresses"

    found: list[str] = []
    messages = [m for capture in captures for m in capture.drain()]
    assert {m[0]["event_type"] for m in messages} >= {
        "complaint_received", "complaint_routed", "notification_sent"
    }
    for body, headers in messages:
        text = body if isinstance(body, str | bytes) else json.dumps(body, ensure_ascii=False)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        where = f"event {body.get('event_type') if isinstance(body, dict) else '?'}"
        found += leaks(text + json.dumps(headers, default=str), where)

    cluster.stop()  # flush and close every log before reading them
    log_files = sorted(cluster.log_dir.glob("*.log"))
    assert {p.stem for p in log_files} >= {"intake", "routing", "notification", "reporting"}
    for path in log_files:
        found += leaks(path.read_text("utf-8", "replace"), f"log {path.name}")

    for service in ("routing", "notification", "reporting"):
        found += leaks(table_dump(pg_urls[service]), f"{service} database")

    assert found == []
