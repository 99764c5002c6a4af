"""The lifecycle through routing's inbox API, on real RabbitMQ and PostgreSQL: transitions are
events with status and seq, units see only their own complaints (404), the desk re-routes and
closes, the complainant's answers (through intake) move the complaint, everything is audited."""

import pytest
from sqlalchemy import create_engine, text
from support import amqp
from support.routing_inbox import DESK, ApiClient, complaint_row, create_staff, route
from support.wait import wait_for

from services.routing.service import RoutingService
from shared.contracts import build_event


@pytest.fixture
def routing(start_service, pg_urls):
    create_staff(pg_urls["routing"])
    return start_service(RoutingService, EVENT_RETRY_DELAYS_MS=[100, 200],
                         SLA_TICK_SECONDS=3600)


@pytest.fixture
def lifecycle_capture(amqp_uri):
    return amqp.Capture(amqp_uri, "routing.events", "#")


def events_of(capture, complaint_id):
    return [m for m, _ in capture.drain() if m.get("correlation_id") == complaint_id]


def wait_events(capture, complaint_id, n):
    return wait_for(lambda: (lambda e: e if len(e) >= n else None)(
        events_of(capture, complaint_id)), timeout=15, message=f"{n} events")


def test_a_unit_works_a_complaint_from_routed_to_resolved_and_every_step_is_an_event(
    routing, amqp_uri, pg_urls, lifecycle_capture
):
    row = route(amqp_uri, pg_urls["routing"])
    cid = row["complaint_id"]
    assert (row["unit_code"], row["status"], row["seq"]) == ("kua-merigi", "routed", 1)
    op = ApiClient(routing.base_url, "op.merigi")

    listing = op.get("/api/v1/inbox").json()
    assert [i["complaint_id"] for i in listing["items"]] == [cid]
    for action, words in [("acknowledge", None), ("start", None),
                         ("request_info", "Mohon kirim nomor pendaftaran nikah"),
                         ]:
        r = op.act(cid, action, words)
        assert r.status_code == 200, r.text
    assert complaint_row(pg_urls["routing"], cid)["paused_at"] is not None

    # The complainant answers through intake: the clock resumes, back to in_progress.
    amqp.publish_event(amqp_uri, build_event(
        "complaint_info_added",
        {"complaint_id": cid, "tracking_code": row["tracking_code"], "channel": "whatsapp",
         "text": "Nomor pendaftaran 123/2026", "at": row["received_at"]},
        correlation_id=cid))
    wait_for(lambda: complaint_row(pg_urls["routing"], cid)["status"] == "in_progress",
             message="info added resumes the complaint")
    assert complaint_row(pg_urls["routing"], cid)["paused_at"] is None

    assert op.act(cid, "respond", "Berkas sudah lengkap, jadwal akad Senin.").status_code == 200
    assert op.act(cid, "resolve", "Akad nikah sudah dijadwalkan").status_code == 200
    assert op.act(cid, "resolve", "lagi").status_code == 409  # not from resolved

    events = wait_events(lifecycle_capture, cid, 7)
    assert [(e["event_type"], e["data"]["status"], e["data"]["seq"]) for e in events] == [
        ("complaint_routed", "routed", 1),
        ("complaint_acknowledged", "acknowledged", 2),
        ("complaint_work_started", "in_progress", 3),
        ("complaint_info_requested", "info_requested", 4),
        ("complaint_work_started", "in_progress", 5),
        ("complaint_responded", "responded", 6),
        ("complaint_resolved", "resolved", 7),
    ]
    assert events[4]["data"]["cause"] == "info_added"
    assert events[5]["data"]["response"] == "Berkas sudah lengkap, jadwal akad Senin."
    assert {e["data"].get("actor_role") for e in events[1:4]} == {"unit_operator"}

    detail = op.get(f"/api/v1/inbox/complaints/{cid}").json()
    assert detail["status"] == "resolved"
    assert [e["action"] for e in detail["timeline"]] == [
        "routed", "acknowledge", "start", "request_info", "info_added", "respond", "resolve"]

    # "Not resolved" within the window reopens it.
    amqp.publish_event(amqp_uri, build_event(
        "complaint_reopened", {"complaint_id": cid, "tracking_code": row["tracking_code"],
                               "reason": "Belum ada jadwal", "at": row["received_at"]},
        correlation_id=cid))
    wait_for(lambda: complaint_row(pg_urls["routing"], cid)["status"] == "in_progress")
    assert wait_events(lifecycle_capture, cid, 8)[7]["data"]["cause"] == "reopened"


def test_a_unit_asking_for_another_units_complaint_gets_404_everywhere(routing, amqp_uri,
                                                                       pg_urls):
    row = route(amqp_uri, pg_urls["routing"])  # kua-merigi
    cid = row["complaint_id"]
    other = ApiClient(routing.base_url, "op.kepahiang")
    assert other.get("/api/v1/inbox").json()["items"] == []
    assert other.get(f"/api/v1/inbox/complaints/{cid}").status_code == 404
    r = other.act(cid, "acknowledge")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert other.get("/api/v1/inbox/complaints/not-a-uuid").status_code == 404
    assert other.get("/api/v1/audit").status_code == 403
    assert complaint_row(pg_urls["routing"], cid)["status"] == "routed"
    # Not signed in: 401; a write without the CSRF header: 403.
    import requests

    assert requests.get(routing.url("/api/v1/inbox"), timeout=10).status_code == 401
    own = ApiClient(routing.base_url, "op.merigi")
    r = own.http.post(routing.url(f"/api/v1/inbox/complaints/{cid}/actions"),
                      json={"action": "acknowledge"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    # A PTSP officer has no inbox.
    assert ApiClient(routing.base_url, "ptsp").get("/api/v1/inbox").status_code == 403


def test_a_returned_complaint_goes_back_to_the_desk_and_the_desk_reroutes_it(
    routing, amqp_uri, pg_urls, lifecycle_capture
):
    row = route(amqp_uri, pg_urls["routing"])
    cid = row["complaint_id"]
    op = ApiClient(routing.base_url, "op.merigi")
    assert op.act(cid, "return").status_code == 422  # a reason is required
    assert op.act(cid, "return", "Ini urusan KUA Kepahiang").status_code == 200
    assert op.get(f"/api/v1/inbox/complaints/{cid}").status_code == 404  # no longer theirs
    assert complaint_row(pg_urls["routing"], cid)["unit_code"] == DESK

    desk = ApiClient(routing.base_url, "meja")
    r = desk.act(cid, "reroute", "Sesuai domisili", target_unit="kua-ujan-mas")
    assert r.status_code == 422 and r.json()["error"]["code"] == "unit_not_active"
    assert desk.act(cid, "reroute", "Sesuai domisili",
                    target_unit="kua-kepahiang").status_code == 200
    kph = ApiClient(routing.base_url, "op.kepahiang")
    assert kph.get(f"/api/v1/inbox/complaints/{cid}").json()["status"] == "routed"

    events = wait_events(lifecycle_capture, cid, 4)
    assert [(e["event_type"], e["data"]["seq"], e["data"]["unit_code"]) for e in events] == [
        ("complaint_routed", 1, "kua-merigi"),
        ("complaint_returned", 2, "kua-merigi"),
        ("complaint_routed", 3, DESK),
        ("complaint_routed", 4, "kua-kepahiang"),
    ]
    assert events[2]["data"]["rule"] == "returned"
    assert events[3]["data"]["rule"] == "desk_reroute"

    assert desk.act(cid, "duplicate", "DMS-ASAL-0001").status_code == 200
    closed = wait_events(lifecycle_capture, cid, 5)[4]
    assert closed["event_type"] == "complaint_closed"
    assert closed["data"]["reason"] == "Duplikat dari pengaduan DMS-ASAL-0001"

    # The audit trail: who, what, before and after; readable by auditors; append-only.
    trail = ApiClient(routing.base_url, "auditor").get("/api/v1/audit").json()["entries"]
    mine = [e for e in trail if e["complaint_id"] == cid]
    assert [(e["actor"], e["action"]) for e in reversed(mine)] == [
        ("system", "routed"), ("op.merigi", "return"), ("meja", "reroute"),
        ("meja", "duplicate")]
    assert mine[0]["before"] == {"status": "routed", "unit_code": "kua-kepahiang"}
    assert mine[0]["after"] == {"status": "closed", "unit_code": "kua-kepahiang"}
    engine = create_engine(pg_urls["routing"])
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'x'"))
    engine.dispose()


def test_a_confidential_complaint_is_marked_and_a_shadow_unit_only_reads_it(
    routing, amqp_uri, pg_urls
):
    # kua-tebat-karai is off; the desk moves it to shadow first.
    desk = ApiClient(routing.base_url, "meja")
    r = desk.post("/api/v1/units/kua-tebat-karai/stage", {"stage": "shadow", "reason": "latihan"})
    assert r.status_code == 200 and r.json()["changed"] is True
    wait_for(lambda: any(u["code"] == "kua-tebat-karai" and u["stage"] == "shadow"
                         for u in desk.get("/api/v1/units").json()["units"]))
    row = route(amqp_uri, pg_urls["routing"], kecamatan_code="17.08.03",
                confidentiality="confidential")
    assert (row["unit_code"], row["shadow_unit_code"]) == (DESK, "kua-tebat-karai")
    engine = create_engine(pg_urls["routing"])
    from sqlalchemy.orm import Session

    from services.routing import accounts
    with Session(engine) as s:
        accounts.create(s, "op.tebat", "Op Tebat", "unit_operator", "kata-sandi-panjang",
                        "kua-tebat-karai")
        s.commit()
    engine.dispose()
    shadow = ApiClient(routing.base_url, "op.tebat")
    detail = shadow.get(f"/api/v1/inbox/complaints/{row['complaint_id']}").json()
    assert detail["read_only"] is True and detail["actions"] == []
    assert detail["confidential"] is True
    assert shadow.act(row["complaint_id"], "acknowledge").status_code == 403
