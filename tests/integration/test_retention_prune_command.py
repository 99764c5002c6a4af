"""`dumas <service> prune` on real PostgreSQL: one sweep of the service's outbox and
processed_events with the settings of the environment, what it deleted printed per table, exit
0; `--dry-run` counts without deleting; a refused setting deletes nothing and exits 2."""

import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path

import pytest
from sqlalchemy import select
from support.databases import execute, rows

from services.cli import main as dumas

ROOT = Path(__file__).resolve().parents[2]
H, D = timedelta(hours=1), timedelta(days=1)
SETTINGS = ("OUTBOX_RETENTION_HOURS", "PROCESSED_EVENTS_RETENTION_DAYS", "RETENTION_BATCH_SIZE",
            "OUTBOX_RETENTION_SWEEP_SECONDS", "OUTBOX_DELETE_PUBLISHED")


@pytest.fixture(autouse=True)
def shipped_settings(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def tables(service):
    db = import_module(f"services.{service}.db")
    return db.outbox, db.processed_events


def old_and_fresh_rows(service, now=None):
    """Two outbox rows published 8 days ago, one never published (60 days old), one published two
    hours ago; three processed_events records 31 days old, one an hour old."""
    now = now or datetime.now(UTC)
    outbox, processed = tables(service)

    def published(name, created_ago, published_ago=None):
        return outbox.insert().values(
            event_id=name, exchange=f"{service}.events", routing_key="something_happened",
            correlation_id=str(uuid.uuid4()), body="{}", created_at=now - created_ago,
            published_at=None if published_ago is None else now - published_ago)

    def handled(name, age):
        return processed.insert().values(consumer=f"{service}.something", event_id=name,
                                         processed_at=now - age)

    return [published("unpublished-old", 60 * D), published("old-1", 9 * D, 8 * D),
            published("old-2", 9 * D, 8 * D), published("fresh", 3 * H, 2 * H),
            *(handled(f"handled-{i}", 31 * D) for i in range(3)), handled("handled-fresh", H)]


def left(url, service):
    outbox, processed = tables(service)
    return (sorted(r.event_id for r in rows(url, select(outbox.c.event_id))),
            sorted(r.event_id for r in rows(url, select(processed.c.event_id))))


def line(table, name, window, verb, n):
    return re.compile(rf"^{table}\s+{name}\s+older than {window}\s+{verb} {n}$", re.M)


@pytest.mark.parametrize("service", ["routing", "notification"])
def test_prune_deletes_old_published_outbox_rows_and_old_processed_events_and_prints_counts(
        service, pg_urls, monkeypatch, capsys):
    url = pg_urls[service]
    execute(url, *old_and_fresh_rows(service))
    monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", url)
    before = left(url, service)

    assert dumas([service, "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert line("outbox", "published", "7 days", "would delete", 2).search(out), out
    assert line("processed_events", "handled", "30 days", "would delete", 3).search(out), out
    assert "total: would delete 5 (dry run: nothing deleted)" in out
    assert left(url, service) == before

    assert dumas([service, "prune"]) == 0
    out = capsys.readouterr().out
    assert line("outbox", "published", "7 days", "deleted", 2).search(out), out
    assert line("processed_events", "handled", "30 days", "deleted", 3).search(out), out
    assert re.search(r"^total: deleted 5$", out, re.M), out
    assert left(url, service) == (["fresh", "unpublished-old"], ["handled-fresh"])

    assert dumas([service, "prune"]) == 0
    assert "total: deleted 0" in capsys.readouterr().out


def test_the_installed_command_honours_the_configured_windows(pg_urls):
    url = pg_urls["notification"]
    execute(url, *old_and_fresh_rows("notification"))
    env = {**os.environ, "NOTIFICATION_DATABASE_URL": url, "OUTBOX_RETENTION_HOURS": "1",
           "PROCESSED_EVENTS_RETENTION_DAYS": "40", "RETENTION_BATCH_SIZE": "1"}
    for name in SETTINGS[3:]:
        env.pop(name, None)

    run = subprocess.run([str(Path(sys.executable).with_name("dumas")), "notification", "prune"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert run.returncode == 0, run.stderr
    # The fresh row was published two hours ago: past a one-hour window. In batches of one.
    assert line("outbox", "published", "1 hours", "deleted", 3).search(run.stdout), run.stdout
    assert line("processed_events", "handled", "40 days", "deleted", 0).search(run.stdout)
    assert left(url, "notification") == (
        ["unpublished-old"], ["handled-0", "handled-1", "handled-2", "handled-fresh"])


def test_intake_prune_sweeps_its_outbox_and_processed_events_with_its_own_records(
        pg_urls, monkeypatch, capsys):
    url = pg_urls["intake"]
    execute(url, *old_and_fresh_rows("intake"))
    monkeypatch.setenv("INTAKE_DATABASE_URL", url)

    assert dumas(["intake", "prune"]) == 0
    out = capsys.readouterr().out

    assert re.search(r"^idempotency\s+whatsapp\s+older than 8 days\s+deleted 0$", out, re.M)
    assert line("outbox", "published", "7 days", "deleted", 2).search(out), out
    assert line("processed_events", "handled", "30 days", "deleted", 3).search(out), out
    assert re.search(r"^total: deleted 5$", out, re.M), out
    assert left(url, "intake") == (["fresh", "unpublished-old"], ["handled-fresh"])


@pytest.mark.parametrize(("service", "setting", "value", "message"), [
    ("routing", "PROCESSED_EVENTS_RETENTION_DAYS", "7",
     "PROCESSED_EVENTS_RETENTION_DAYS=7 is below the safe minimum 8"),
    ("notification", "OUTBOX_RETENTION_HOURS", "seminggu",
     "OUTBOX_RETENTION_HOURS must be a number, got 'seminggu'"),
    ("intake", "RETENTION_BATCH_SIZE", "0", "RETENTION_BATCH_SIZE=0 is below the safe minimum 1"),
])
def test_a_refused_setting_deletes_nothing_and_exits_2(
        service, setting, value, message, pg_urls, monkeypatch, capsys):
    url = pg_urls[service]
    execute(url, *old_and_fresh_rows(service))
    monkeypatch.setenv(f"{service.upper()}_DATABASE_URL", url)
    monkeypatch.setenv(setting, value)
    before = left(url, service)

    assert dumas([service, "prune"]) == 2
    captured = capsys.readouterr()

    assert f"dumas {service} prune: refused, nothing deleted: {message}" in captured.err
    assert captured.out == ""
    assert left(url, service) == before
