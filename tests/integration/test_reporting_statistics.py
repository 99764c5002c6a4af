"""Statistics with known answers on PostgreSQL (working days, SLA, returns, ratings), a
generated data set whose counter tables must equal a recount from the complaints, and the
exports (CSV, XLSX opened with openpyxl, the monthly PDF read back with pypdf)."""

import io
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.cli import main as dumas
from services.reporting import commands, exports, handlers
from services.reporting.db import complaints
from services.reporting.domain.generator import stories
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, make_engine
from shared.workdays import WIB


def wib(*args):
    return datetime(*args, tzinfo=WIB).astimezone(UTC)


class Story:
    """Events of one complaint, in the producers' shapes."""

    def __init__(self, received_at, channel="web", category="nikah_rujuk",
                 confidentiality="public", kecamatan="17.08.05"):
        self.id = str(uuid.uuid4())
        self.common = {"complaint_id": self.id, "tracking_code": f"DMS-T-{self.id[:8]}"}
        self.received_at = received_at
        self.channel, self.category = channel, category
        self.confidentiality, self.kecamatan = confidentiality, kecamatan
        self.seq = 0
        self.events = [("complaint_received", {
            **self.common, "channel": channel, "category": category,
            "description": "Uraian pengaduan.", "kecamatan_code": kecamatan,
            "confidentiality": confidentiality, "received_at": received_at})]

    def routed(self, unit, due_at):
        self.seq += 1
        self.unit = unit
        self.events.append(("complaint_routed", {
            **self.common, "unit_code": unit, "unit_name": unit, "unit_type": "kua",
            "stage": "live", "rule": "test", "reason": "Uji", "category": self.category,
            "channel": self.channel, "confidentiality": self.confidentiality,
            "kecamatan_code": self.kecamatan, "routed_at": self.received_at + timedelta(
                minutes=self.seq), "due_at": due_at, "status": "routed", "seq": self.seq}))
        return self

    def act(self, event_type, status, at, **extra):
        self.seq += 1
        self.events.append((event_type, {**self.common, "unit_code": self.unit,
                                         "actor_role": "unit_operator", "status": status,
                                         "seq": self.seq, "at": at, **extra}))
        return self

    def add(self, event_type, **data):
        self.events.append((event_type, {**self.common, **data}))
        return self


@pytest.fixture
def db(pg_urls):
    engine = make_engine(pg_urls["reporting"])
    factory = sessionmaker(engine, expire_on_commit=False)
    yield pg_urls["reporting"], factory, (lambda: UnitOfWork(factory, None, None))
    engine.dispose()


def record_all(uow_factory, stories_, reverse=False):
    for story in stories_:
        events = story.events if isinstance(story, Story) else story
        for event_type, data in (reversed(events) if reverse else events):
            envelope = build_event(event_type, data, correlation_id=str(data["complaint_id"]))
            handlers.record(uow_factory, load_event(envelope))


def known_stories():
    # A: received Mon 2 Nov 09:00 WIB, acknowledged Wed (2 wd), resolved next Mon (5 wd), due
    # Thu 5 Nov 16:00 (3 wd for nikah_rujuk): SLA met; rated 4.
    a = Story(wib(2026, 11, 2, 9)).routed("kua-merigi", wib(2026, 11, 5, 16))
    a.act("complaint_acknowledged", "acknowledged", wib(2026, 11, 4, 10))
    a.act("complaint_resolved", "resolved", wib(2026, 11, 9, 11), resolution="Selesai")
    a.add("complaint_rated", rating=4, at=wib(2026, 11, 9, 15))
    # B: received Fri 6 Nov 17:00 (after closing: counts from Mon 9), returned by the desk and
    # re-routed to KUA Merigi, breached, responded Tue 10 Nov (1 wd); rated 2.
    b = Story(wib(2026, 11, 6, 17), channel="qr", category="integritas")
    b.routed("kankemenag-kepahiang", wib(2026, 11, 11, 16))
    b.act("complaint_returned", "routed", wib(2026, 11, 9, 8), reason="Bukan wewenang")
    b.routed("kua-merigi", wib(2026, 11, 11, 16))
    b.add("complaint_sla_breached", unit_code="kua-merigi", due_at=wib(2026, 11, 11, 16),
          at=wib(2026, 11, 11, 16))
    b.act("complaint_responded", "responded", wib(2026, 11, 10, 9), response="Jawaban")
    b.add("complaint_rated", rating=2, at=wib(2026, 11, 12, 9))
    # C: confidential WhatsApp complaint, routed and still open.
    c = Story(wib(2026, 11, 16, 10), channel="whatsapp", category="wakaf",
              confidentiality="confidential").routed("kua-merigi", wib(2026, 11, 23, 16))
    # D: received Wed 23 Dec, responded Mon 28 Dec: Thu 24 (cuti bersama) and Fri 25 (Natal)
    # are not working days, so 1 working day, not 3; resolved the same day.
    d = Story(wib(2026, 12, 23, 10), category="lainnya").routed("kankemenag-kepahiang",
                                                                 wib(2026, 12, 31, 16))
    d.act("complaint_responded", "responded", wib(2026, 12, 28, 9), response="Jawaban")
    d.act("complaint_resolved", "resolved", wib(2026, 12, 28, 14), resolution="Selesai")
    return [a, b, c, d]


def test_statistics_over_a_known_data_set_have_the_known_answers(db):
    url, factory, uow = db
    record_all(uow, known_stories())

    with factory() as session:
        november = handlers.stats(session, handlers.StatsQuery(date(2026, 11, 1),
                                                               date(2026, 11, 30), {}, "week"),
                                  today=date(2026, 11, 20))
        december = handlers.stats(session, handlers.StatsQuery(date(2026, 12, 1),
                                                               date(2026, 12, 31)))
        merigi = handlers.stats(session, handlers.StatsQuery(
            filters={"unit_code": "kua-merigi", "channel": "qr"}))

    assert november["total"] == 3
    assert november["by_status"] == {"routed": 1, "responded": 1, "resolved": 1}
    assert november["by_unit"] == {"kua-merigi": 3}
    assert november["by_channel"] == {"qr": 1, "web": 1, "whatsapp": 1}
    assert november["by_confidentiality"] == {"confidential": 1, "public": 2}
    # First responses: A 2 wd, B 1 wd -> median (nearest rank) 1, p90 2; resolution A 5 wd.
    assert november["working_days"]["first_response"] == {"count": 2, "median": 1, "p90": 2}
    assert november["working_days"]["resolution"] == {"count": 1, "median": 5, "p90": 5}
    assert november["sla"] == {"met": 1, "missed": 1, "warned": 0, "compliance": 0.5}
    assert november["returned"] == 1 and november["rerouted"] == 1
    assert november["satisfaction"] == {"rated": 2, "average": 3.0, "by_rating": {
        "1": 0, "2": 1, "3": 0, "4": 1, "5": 0}}
    # Open on 20 Nov: B (received 6 Nov, counts from 9 Nov: 9 wd) and C (16 Nov: 4 wd).
    assert november["backlog"]["open"] == 2
    assert november["backlog"]["oldest_age_working_days"] == 10
    assert november["trend"]["buckets"] == {
        "2026-11-02": {"received": 2, "open": 1, "done": 1},
        "2026-11-16": {"received": 1, "open": 1, "done": 0},
    }
    assert december["working_days"]["first_response"]["median"] == 1  # Christmas skipped
    assert december["sla"]["met"] == 1
    assert merigi["total"] == 1 and merigi["sla"]["missed"] == 1


def test_order_of_events_changes_nothing_and_a_rebuild_gives_the_same_answers(db):
    url, factory, uow = db
    record_all(uow, known_stories(), reverse=True)
    with factory() as session:
        reversed_stats = handlers.stats(session, today=date(2026, 12, 31))
    assert commands.rebuild(url) > 0
    with factory() as session:
        rebuilt = handlers.stats(session, today=date(2026, 12, 31))
    assert rebuilt == reversed_stats
    assert rebuilt["total"] == 4 and rebuilt["working_days"]["resolution"]["count"] == 2


def test_counter_tables_equal_a_recount_of_a_generated_data_set(db):
    url, factory, uow = db
    generated = list(stories(150, seed=7, start=date(2026, 10, 1), days=60))
    record_all(uow, generated)
    with factory() as session:
        stats = handlers.stats(session)
        by_status = dict(session.execute(
            select(complaints.c.status, func.count()).group_by(complaints.c.status)).all())
        by_channel = dict(session.execute(
            select(complaints.c.channel, func.count()).group_by(complaints.c.channel)).all())
        rated = session.execute(select(func.count()).where(complaints.c.rating.is_not(None))
                                ).scalar_one()
    assert stats["total"] == 150
    assert stats["by_status"] == {s: n for s, n in by_status.items()}
    assert stats["by_channel"] == dict(sorted(by_channel.items()))
    assert stats["satisfaction"]["rated"] == rated


def test_exports_open_with_indonesian_headers_and_the_monthly_pdf_has_tables(db, tmp_path,
                                                                            monkeypatch):
    url, factory, uow = db
    record_all(uow, known_stories())
    with factory() as session:
        stats = handlers.stats(session, handlers.StatsQuery(date(2026, 11, 1),
                                                            date(2026, 11, 30)))

    workbook = load_workbook(io.BytesIO(exports.to_xlsx(stats)))
    assert "Ringkasan" in workbook.sheetnames
    summary = {row[0]: row[1] for row in workbook["Ringkasan"].iter_rows(values_only=True)}
    assert summary["Ukuran"] == "Nilai"
    assert summary["Jumlah pengaduan"] == 3
    assert summary["Median waktu penyelesaian (hari kerja)"] == "5"
    sla_rows = list(workbook["Kepatuhan SLA per unit"].iter_rows(values_only=True))
    assert sla_rows[0] == ("Unit", "Jumlah pengaduan", "Tepat waktu", "Terlambat",
                           "Kepatuhan SLA")
    assert sla_rows[1] == ("kua-merigi", 3, 1, 1, "50,0%")
    csv_text = exports.to_csv(stats).decode("utf-8-sig")
    assert "Kanal;Jumlah" in csv_text and "Poster QR;1" in csv_text

    monkeypatch.setenv("REPORTING_DATABASE_URL", url)
    out = tmp_path / "laporan.pdf"
    assert dumas(["reporting", "monthly", "--month", "2026-11", "--out", str(out)]) == 0
    reader = PdfReader(str(out))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Laporan Bulanan Dumas" in text
    assert "November 2026" in text
    assert "Kepatuhan SLA per unit" in text and "kua-merigi" in text
    assert "Sebaran kanal" in text  # the channel chart
    assert reader.metadata.title == "Laporan Bulanan Dumas November 2026"
