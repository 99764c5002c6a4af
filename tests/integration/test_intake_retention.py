"""intake's retention sweep on real PostgreSQL and SQLite: old idempotency records and finished
media downloads go, fresh ones and pending downloads stay, a WhatsApp redelivery inside the
window is still recognised, batches are bounded, two sweepers at once are safe, and
`dumas intake prune --dry-run` counts without deleting."""

import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker
from support.databases import execute, rows, rows_locked
from support.intake_channels import intake_config, signed, whatsapp_text
from support.wait import wait_for

from services.cli import main as dumas
from services.intake import retention
from services.intake.db import complaints, idempotency, media_downloads
from services.intake.service import IntakeService
from shared.db import UnitOfWork, make_engine

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_url(intake_db_url):
    return intake_db_url




def keys(url):
    return sorted(rows(url, select(idempotency.c.scope, idempotency.c.key)))


def message_ids(url):
    return sorted(r.message_id for r in rows(url, select(media_downloads.c.message_id)))


def record(scope, key, age):
    return idempotency.insert().values(scope=scope, key=key, request_hash="-", status_code=200,
                                       body="{}", complaint_id=None, created_at=NOW - age)


def complaint(status="received"):
    cid = str(uuid.uuid4())
    return cid, complaints.insert().values(
        id=cid, tracking_code=f"DMS-{cid[:8]}", channel="whatsapp", category="lainnya",
        description="Pengaduan melalui WhatsApp berupa foto.", confidentiality="public",
        status=status, unit_hint_trusted=False, created_at=NOW - timedelta(days=90),
        updated_at=NOW - timedelta(days=60))


def download(message_id, complaint_id, state, age):
    at = NOW - age
    return media_downloads.insert().values(
        message_id=message_id, complaint_id=complaint_id, media_id=f"m-{message_id}",
        kind="image", state=state, attempts=1, next_at=at, created_at=at)


def uow_factory(url, **engine_options):
    engine = make_engine(url, **engine_options)
    factory = sessionmaker(engine, expire_on_commit=False)
    return engine, (lambda: UnitOfWork(factory, None, None))


def sweep(url, windows=retention.Windows(), now=NOW, **engine_options):
    engine, factory = uow_factory(url, **engine_options)
    try:
        return retention.sweep(factory, windows, now)
    finally:
        engine.dispose()


def counts(outcome):
    return {(table, name): n for table, name, _, n in outcome.rows}


# -- idempotency records --------------------------------------------------------------------------


def test_each_scope_keeps_its_records_for_its_own_window(db_url):
    h, d = timedelta(hours=1), timedelta(days=1)
    execute(
        db_url,
        record("api:rumah_digital", "old", 73 * h), record("api:rumah_digital", "fresh", 71 * h),
        record("ip:10.0.0.7", "old", 80 * h), record("ip:10.0.0.7", "fresh", 2 * h),
        # Meta retries for up to 7 days: a 7-day-old message id must still be known.
        record("whatsapp", "msg:wamid.OLD", 8 * d + h), record("whatsapp", "msg:wamid.7D", 7 * d),
        record("amqp:rumah_digital", "old", 31 * d), record("amqp:rumah_digital", "fresh", 20 * d),
        # A scope the sweep does not know is kept for the longest window (30 days), not 72 h.
        record("future", "fresh", 29 * d), record("future", "old", 31 * d),
    )

    outcome = sweep(db_url)

    assert keys(db_url) == [
        ("amqp:rumah_digital", "fresh"), ("api:rumah_digital", "fresh"), ("future", "fresh"),
        ("ip:10.0.0.7", "fresh"), ("whatsapp", "msg:wamid.7D"),
    ]
    assert counts(outcome) == {
        ("idempotency", "whatsapp"): 1, ("idempotency", "api"): 2, ("idempotency", "amqp"): 1,
        ("idempotency", "other"): 1, ("media_downloads", "done"): 0,
        ("media_downloads", "failed"): 0,
    }
    assert outcome.by_table == {"idempotency": 5, "media_downloads": 0}


def test_configured_windows_are_honoured(db_url):
    execute(db_url, record("api:x", "a", timedelta(hours=30)),
            record("api:x", "b", timedelta(hours=20)))

    sweep(db_url, retention.windows_from({"IDEMPOTENCY_RETENTION_HOURS": "24"}))

    assert keys(db_url) == [("api:x", "b")]


def test_a_whatsapp_window_inside_metas_retry_horizon_is_refused():
    with pytest.raises(retention.RetentionConfigError, match="7 days"):
        retention.windows_from({"WHATSAPP_IDEMPOTENCY_RETENTION_DAYS": "7"})
    with pytest.raises(retention.RetentionConfigError, match="must be a number"):
        retention.windows_from({"IDEMPOTENCY_RETENTION_HOURS": "tiga hari"})
    with pytest.raises(retention.RetentionConfigError, match="implausibly large"):
        retention.windows_from({"AMQP_IDEMPOTENCY_RETENTION_DAYS": "inf"})
    assert retention.windows_from({}) == retention.Windows()


# -- media downloads ------------------------------------------------------------------------------


def test_finished_downloads_go_but_pending_running_and_unresolved_failures_stay(db_url):
    d = timedelta(days=1)
    open_id, open_row = complaint("in_progress")
    closed_id, closed_row = complaint("closed")
    execute(
        db_url, open_row, closed_row,
        download("done-old", open_id, "done", 31 * d),
        download("done-fresh", open_id, "done", 29 * d),
        download("pending-old", open_id, "pending", 60 * d),  # never deleted, however old
        download("running-old", closed_id, "running", 60 * d),
        download("failed-open", open_id, "failed", 60 * d),  # its complaint is still worked on
        download("failed-closed", closed_id, "failed", 31 * d),
        download("refused-closed", closed_id, "refused", 31 * d),
        download("failed-closed-fresh", closed_id, "failed", 29 * d),
    )

    outcome = sweep(db_url)

    assert message_ids(db_url) == ["done-fresh", "failed-closed-fresh", "failed-open",
                                   "pending-old", "running-old"]
    assert outcome.by_table == {"idempotency": 0, "media_downloads": 3}


# -- WhatsApp redelivery --------------------------------------------------------------------------


def post_whatsapp(intake, payload):
    raw, headers = signed(payload)
    return intake.post("/webhooks/whatsapp", data=raw, headers=headers)


def test_a_whatsapp_redelivery_inside_the_window_is_still_a_duplicate(db_url, start_service):
    intake = start_service(IntakeService, DATABASE_URL=db_url, **intake_config())
    payload = whatsapp_text("wamid.RET1", "6281234567801",
                            "Bantuan operasional madrasah belum cair sejak Agustus")
    assert post_whatsapp(intake, payload).json()["outcomes"] == ["complaint"]

    now = datetime.now(UTC)
    # Meta may redeliver for up to 7 days; a sweep on the last of them keeps the message id.
    kept = retention.prune(db_url, retention.Windows(), now=now + timedelta(days=7, hours=23))
    again = post_whatsapp(intake, payload)

    assert counts(kept)[("idempotency", "whatsapp")] == 0
    assert again.json()["outcomes"] == ["duplicate_delivery"]
    assert rows(db_url, select(func.count()).select_from(complaints))[0][0] == 1
    # Past the window the same sweep does delete it: the test above is not vacuous.
    later = retention.prune(db_url, retention.Windows(), now=now + timedelta(days=8, hours=1))
    assert counts(later)[("idempotency", "whatsapp")] == 1
    assert keys(db_url) == []


# -- batches and concurrency ----------------------------------------------------------------------


def test_one_sweep_deletes_at_most_its_batches_and_the_next_one_goes_on(db_url):
    execute(db_url, *(record("whatsapp", f"msg:{i}", timedelta(days=9)) for i in range(23)))
    windows = retention.Windows(batch_size=5, max_batches=2)

    first = sweep(db_url, windows)
    second = sweep(db_url, windows)
    third = sweep(db_url, windows)

    assert [o.by_table["idempotency"] for o in (first, second, third)] == [10, 10, 3]
    assert keys(db_url) == []


def test_a_row_locked_elsewhere_is_skipped_not_waited_for_on_postgresql(pg_urls):
    url = pg_urls["intake"]
    execute(url, *(record("whatsapp", f"msg:{i}", timedelta(days=9)) for i in range(5)))
    with rows_locked(url, "SELECT 1 FROM idempotency WHERE key = 'msg:3' FOR UPDATE"):
        # Without SKIP LOCKED the sweep would wait here; lock_timeout turns that wait into
        # an error instead of a hung test.
        outcome = sweep(url, retention.Windows(batch_size=2),
                        connect_args={"options": "-c lock_timeout=3000"})

    assert outcome.by_table["idempotency"] == 4
    assert keys(url) == [("whatsapp", "msg:3")]
    assert sweep(url).by_table["idempotency"] == 1


def test_two_intake_replicas_sweeping_at_once_delete_every_row_exactly_once(db_url):
    total = 400
    execute(db_url, *(record("whatsapp", f"msg:{i}", timedelta(days=30)) for i in range(total)))
    env = {**os.environ, "INTAKE_DATABASE_URL": db_url, "RETENTION_BATCH_SIZE": "7"}
    command = [str(Path(sys.executable).with_name("dumas")), "intake", "prune"]
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [run.communicate(timeout=120) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], results
    deleted = [int(re.search(r"^total: deleted (\d+)", out, re.M).group(1)) for out, _ in results]
    assert sum(deleted) == total
    assert keys(db_url) == []


# -- the timer in a running intake ----------------------------------------------------------------


def test_the_running_service_sweeps_on_its_timer_and_counts_what_it_deleted(pg_urls,
                                                                          start_service):
    url = pg_urls["intake"]
    now = datetime.now(UTC)
    execute(url, record("api:x", "old", NOW - now + timedelta(hours=73)),
            record("api:x", "fresh", NOW - now + timedelta(hours=1)))
    intake = start_service(IntakeService, RETENTION_SWEEP_SECONDS=0.2, **intake_config())

    wait_for(lambda: keys(url) == [("api:x", "fresh")], timeout=15,
             message="the retention timer deleted the old record")
    metrics = intake.get("/metrics").text
    sample = re.search(r'^dumas_intake_retention_deleted_total\{table="idempotency"\} (\S+)$',
                       metrics, re.M)
    assert sample and float(sample.group(1)) >= 1


# -- dumas intake prune ---------------------------------------------------------------------------


def test_prune_dry_run_prints_counts_and_deletes_nothing(db_url, monkeypatch, capsys):
    closed_id, closed_row = complaint("resolved")
    execute(
        db_url, closed_row,
        record("whatsapp", "msg:old", timedelta(days=40)),
        record("whatsapp", "msg:fresh", timedelta(hours=1)),
        record("api:x", "old", timedelta(days=40)),
        download("done-old", closed_id, "done", timedelta(days=40)),
    )
    monkeypatch.setenv("INTAKE_DATABASE_URL", db_url)
    # the records above are dated relative to NOW; the command uses the real clock
    monkeypatch.setattr(retention, "datetime", _Clock)
    before = (keys(db_url), message_ids(db_url))

    assert dumas(["intake", "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out

    assert re.search(r"^idempotency\s+whatsapp\s+older than 8 days\s+would delete 1$", out, re.M)
    assert re.search(r"^idempotency\s+api\s+older than 72 hours\s+would delete 1$", out, re.M)
    assert re.search(r"^media_downloads\s+done\s+older than 30 days\s+would delete 1$", out,
                     re.M)
    assert "total: would delete 3 (dry run: nothing deleted)" in out
    assert (keys(db_url), message_ids(db_url)) == before

    assert dumas(["intake", "prune"]) == 0
    assert "total: deleted 3" in capsys.readouterr().out
    assert keys(db_url) == [("whatsapp", "msg:fresh")]
    assert message_ids(db_url) == []


def test_prune_refuses_a_window_shorter_than_metas_retries(db_url, monkeypatch, capsys):
    execute(db_url, record("whatsapp", "msg:5d", timedelta(days=5)))
    monkeypatch.setenv("INTAKE_DATABASE_URL", db_url)
    monkeypatch.setenv("WHATSAPP_IDEMPOTENCY_RETENTION_DAYS", "3")

    assert dumas(["intake", "prune"]) == 2
    assert "WHATSAPP_IDEMPOTENCY_RETENTION_DAYS" in capsys.readouterr().err
    assert keys(db_url) == [("whatsapp", "msg:5d")]


class _Clock(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW
