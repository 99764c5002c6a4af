"""Rollout on real RabbitMQ and PostgreSQL: a stage change made while routing runs as two
instances applies to both without a restart, is audited and announced; the simulation command
prints its table for a generated month of complaints."""

import random
from datetime import datetime, timedelta

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker
from support import amqp
from support.routing_inbox import ApiClient, create_staff, received, route
from support.wait import wait_for

from services import cli
from services.routing import handlers
from services.routing.db import audit_log, outbox, processed_events, stage_changes
from services.routing.domain.registry import load_seed
from services.routing.service import RoutingService
from shared.contracts import load_event
from shared.db import UnitOfWork
from shared.workdays import WIB


def stage_seen_by(instance, unit_code):
    units = requests.get(instance.url("/api/v1/units"), timeout=10).json()["units"]
    return next(u["stage"] for u in units if u["code"] == unit_code)


def test_a_stage_change_applies_to_two_running_instances_without_restart(
    start_service, amqp_uri, pg_urls, monkeypatch
):
    create_staff(pg_urls["routing"])
    capture = amqp.Capture(amqp_uri, "routing.events", "unit_stage_changed")
    first = start_service(RoutingService)
    second = start_service(RoutingService)
    assert stage_seen_by(first, "kua-ujan-mas") == stage_seen_by(second, "kua-ujan-mas") == "off"
    off = route(amqp_uri, pg_urls["routing"], kecamatan_code="17.08.02")
    assert (off["unit_code"], off["rule"]) == ("kankemenag-kepahiang", "kua_kecamatan_off")

    # Through the admin API of the first instance ...
    desk = ApiClient(first.base_url, "meja")
    r = desk.post("/api/v1/units/kua-ujan-mas/stage", {"stage": "pilot", "reason": "uji coba"})
    assert r.json() == {"unit_code": "kua-ujan-mas", "old_stage": "off", "new_stage": "pilot",
                        "changed": True}
    # ... the second instance sees it (the registry cache polls the units' version).
    wait_for(lambda: stage_seen_by(second, "kua-ujan-mas") == "pilot", timeout=5)
    for _ in range(4):  # whichever instance consumes them, complaints now reach the unit
        assert route(amqp_uri, pg_urls["routing"], kecamatan_code="17.08.02")["unit_code"] == \
            "kua-ujan-mas"

    # Through the command, with both running.
    monkeypatch.setenv("ROUTING_DATABASE_URL", pg_urls["routing"])
    assert cli.main(["units", "stage", "kua-ujan-mas", "shadow", "--by", "kakankemenag",
                     "--reason", "evaluasi"]) == 0
    wait_for(lambda: (stage_seen_by(first, "kua-ujan-mas"),
                      stage_seen_by(second, "kua-ujan-mas")) == ("shadow", "shadow"), timeout=5,
             message=f"{stage_seen_by(first, 'kua-ujan-mas')}/"
                     f"{stage_seen_by(second, 'kua-ujan-mas')}")

    events = wait_for(lambda: (lambda m: m if len(m) >= 2 else None)(capture.drain()),
                      timeout=15)
    assert [(m["data"]["old_stage"], m["data"]["new_stage"], m["data"]["changed_by"])
            for m, _ in events] == [("off", "pilot", "meja"), ("pilot", "shadow", "kakankemenag")]
    assert all(m["correlation_id"] == "kua-ujan-mas" for m, _ in events)
    engine = create_engine(pg_urls["routing"])
    with engine.connect() as conn:
        assert len(conn.execute(select(stage_changes)
                                .where(stage_changes.c.unit_code == "kua-ujan-mas")).all()) == 2
        audited = conn.execute(select(audit_log.c.actor, audit_log.c.before, audit_log.c.after)
                               .where(audit_log.c.action == "stage_changed")).all()
    engine.dispose()
    assert [tuple(a) for a in audited] == [
        ("meja", {"stage": "off"}, {"stage": "pilot"}),
        ("kakankemenag", {"stage": "pilot"}, {"stage": "shadow"}),
    ]
    # Bad input: 4xx with a code, never a 500.
    assert desk.post("/api/v1/units/kua-ujan-mas/stage", {"stage": "full"}).status_code == 422
    assert desk.post("/api/v1/units/nope/stage", {"stage": "live"}).status_code == 404
    unit_op = ApiClient(first.base_url, "op.merigi")
    assert unit_op.post("/api/v1/units/kua-merigi/stage", {"stage": "off"}).status_code == 403


TEXTS = [
    ("nikah_rujuk", "17.08.02", "Pendaftaran nikah lama diproses"),
    ("nikah_rujuk", "17.08.05", "penghulu telat datang"),
    ("wakaf", "17.08.06", "sertifikat wakaf blm jadi"),
    ("pendidikan_madrasah", None, "MAN 2 kepahiang bus sekolah rusak"),
    ("pendidikan_madrasah", None, "ijazah di MTsN 2 blm keluar"),
    ("pelayanan_ptsp", None, "antrian PTSP lama"),
    ("zakat_infak", "17.08.02", "zakat tdk merata"),
]


@pytest.fixture
def month_of_complaints(pg_urls):
    """A generated month (August 2026) of 300 complaints, routed with today's stages."""
    engine = create_engine(pg_urls["routing"])
    make = sessionmaker(engine, expire_on_commit=False)
    uow_factory = lambda: UnitOfWork(make, outbox, processed_events)  # noqa: E731
    registry = load_seed()
    rng = random.Random(4)
    for _ in range(300):
        category, kecamatan, text = rng.choice(TEXTS)
        minutes = rng.randrange((31 * 24 - 8) * 60)  # 1 Aug 08:00 .. 31 Aug 23:59 WIB
        at = datetime(2026, 8, 1, 8, tzinfo=WIB) + timedelta(minutes=minutes)
        event = load_event(received(category=category, kecamatan_code=kecamatan,
                                    description=text, received_at=at))
        handlers.route_complaint(uow_factory, registry, event, now=at)
    engine.dispose()


def test_the_rollout_simulation_prints_its_table_for_a_month(
    month_of_complaints, pg_urls, monkeypatch, capsys
):
    monkeypatch.setenv("ROUTING_DATABASE_URL", pg_urls["routing"])
    assert cli.main(["units", "simulate", "--from", "2026-08-01", "--to", "2026-09-01",
                     "--stage", "kua-ujan-mas=pilot", "--stage", "man-2-kepahiang=shadow"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "300 complaints received 2026-08-01 .. 2026-09-01" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    # unit, stage now, proposed stage, today, proposed, change, copies
    ujan = rows["kua-ujan-mas"]
    assert ujan[1:3] == ["off", "pilot"] and int(ujan[3]) == 0 and int(ujan[4]) > 0
    desk = rows["kankemenag-kepahiang"]
    assert int(desk[4]) == int(desk[3]) - int(ujan[4])  # what Ujan Mas takes, the desk loses
    man2 = rows["man-2-kepahiang"]
    assert man2[1:5] == ["off", "shadow", "0", "0"] and int(man2[6]) > 0  # read-only copies
    assert sum(int(r[3]) for r in rows.values()) == sum(int(r[4]) for r in rows.values()) == 300
    assert cli.main(["units", "simulate", "--from", "2026-08-01", "--to", "2026-09-01",
                     "--stage", "kua-ujan-mas=sometimes"]) == 2
