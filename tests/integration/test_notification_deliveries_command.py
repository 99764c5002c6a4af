"""`dumas deliveries list|show|retry` on a real PostgreSQL notification database."""

from datetime import timedelta

from sqlalchemy import create_engine, select

from services.cli import main
from services.notification.db import deliveries
from shared.db import utcnow


def insert(url, **values):
    now = utcnow()
    row = {
        "cause_event_id": "0d9b3c1e-6a2f-4f7e-8b5d-1c2e3f4a5b6c",
        "complaint_id": "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10",
        "audience": "complainant", "recipient": "complainant", "channel": "whatsapp",
        "template": "complaint_routed", "context": {"confidential": True, "tracking_url": "x"},
        "attempts": 5, "created_at": now - timedelta(hours=1), "next_attempt_at": now,
        **values,
    }
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(deliveries.insert().values(**row))
    engine.dispose()


def statuses(url):
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(deliveries.c.id, deliveries.c.status,
                                   deliveries.c.attempts)).all()
    engine.dispose()
    return {r.id: (r.status, r.attempts) for r in rows}


def test_parked_deliveries_are_listed_shown_and_sent_again(pg_urls, monkeypatch, capsys):
    url = pg_urls["notification"]
    monkeypatch.setenv("NOTIFICATION_DATABASE_URL", url)
    insert(url, id="d-failed-1", status="failed", provider="whatsapp_cloud",
           last_error="whatsapp_cloud: HTTP 500 (code 5000)")
    insert(url, id="d-failed-2", status="failed", provider="smtp", last_error="smtp: 550")
    insert(url, id="d-sent", status="sent", attempts=1)

    assert main(["deliveries", "list"]) == 0
    out = capsys.readouterr().out
    assert "failed=2" in out and "sent=1" in out
    assert "d-failed-1" in out and "HTTP 500" in out and "d-sent" not in out

    assert main(["deliveries", "show", "d-failed-2"]) == 0
    assert "smtp: 550" in capsys.readouterr().out
    assert main(["deliveries", "show", "nope"]) == 1

    assert main(["deliveries", "retry", "d-failed-1"]) == 0
    assert "1 delivery(ies)" in capsys.readouterr().out
    assert statuses(url) == {"d-failed-1": ("pending", 0), "d-failed-2": ("failed", 5),
                             "d-sent": ("sent", 1)}
    assert main(["deliveries", "retry", "--all"]) == 0
    assert statuses(url)["d-failed-2"] == ("pending", 0)
