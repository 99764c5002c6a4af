"""notification on real RabbitMQ and PostgreSQL consumes every lifecycle event and tells the right
people, once, with the file provider. Events are built with shared.contracts.build_event, as
routing and intake publish them; intake's and routing's contact RPCs are small stand-ins."""

from pathlib import Path

import pytest
from support import amqp
from support.notification_world import (
    UNITS,
    FakeIntake,
    FakeRouting,
    delivery_rows,
    handled,
    info_added,
    metric,
    new_complaint,
    outbox_files,
    routed,
    sla,
    unit_action,
)
from support.wait import wait_for

from services.notification.service import NotificationService

EMAIL = "siti.aminah@contoh.id"


@pytest.fixture
def notification(start_service):
    start_service(FakeIntake)
    start_service(FakeRouting)
    return start_service(NotificationService, EVENT_RETRY_DELAYS_MS=[100, 300, 1000])


@pytest.fixture
def outbox_dir(notification):
    return Path(notification.config["DUMAS_VAR_DIR"]) / "outbox"


def messages_to(outbox_dir, address):
    return [m for m in outbox_files(outbox_dir) if m["to"] == address]


def sent_count(url, complaint_id):
    return sum(r.status == "sent" for r in delivery_rows(url, complaint_id))


def test_the_complainant_hears_of_every_step_in_order_and_only_once(
    notification, outbox_dir, amqp_uri, pg_urls
):
    c = new_complaint({"email": EMAIL})
    url = pg_urls["notification"]
    steps = [
        routed(c),
        unit_action("complaint_acknowledged", c, 2),
        unit_action("complaint_info_requested", c, 3, status="info_requested",
                    question="Mohon kirim foto tanda terima berkas."),
        unit_action("complaint_responded", c, 4, status="responded",
                    response="Jadwal pemeriksaan: Kamis pukul 09.00 WIB."),
        unit_action("complaint_resolved", c, 5, status="resolved",
                    resolution="Pemeriksaan berkas selesai, akad dijadwalkan."),
        unit_action("complaint_closed", c, 6, status="closed", reason="Selesai."),
    ]
    for n, event in enumerate(steps, start=1):
        amqp.publish_event(amqp_uri, event)
        # the unit gets one message for the routing; the complainant one per step
        wait_for(lambda n=n: sent_count(url, c["complaint_id"]) == n + 1, timeout=20,
                 message=f"step {n} sent")

    subjects = [m["subject"] for m in sorted(messages_to(outbox_dir, EMAIL),
                                             key=lambda m: m["created_at"])]
    code = c["tracking_code"]
    assert subjects == [
        f"Pengaduan {code} Telah Diteruskan kepada KUA Kecamatan Kabawetan",
        f"Pengaduan {code} Sedang Ditangani",
        f"Permohonan Informasi Tambahan untuk Pengaduan {code}",
        f"Tanggapan atas Pengaduan {code}",
        f"Pengaduan {code} Telah Selesai Ditangani",
        f"Pengaduan {code} Telah Ditutup",
    ]
    texts = {m["subject"]: m["text"] for m in messages_to(outbox_dir, EMAIL)}
    assert "Mohon kirim foto tanda terima berkas." in texts[subjects[2]]
    assert "Jadwal pemeriksaan: Kamis pukul 09.00 WIB." in texts[subjects[3]]
    assert "Pemeriksaan berkas selesai" in texts[subjects[4]]
    assert "dibuka kembali" in texts[subjects[4]]
    assert len(messages_to(outbox_dir, UNITS["kua-kabawetan"]["email"])) == 1

    # the whole story again (a redelivery storm): nothing new
    before = handled("complaint_closed")
    for event in steps:
        amqp.publish_event(amqp_uri, event)
    wait_for(lambda: handled("complaint_closed") > before, message="redeliveries handled")
    wait_for(lambda: amqp.queue_depth(amqp_uri, "notification.complaint_acknowledged") == 0)
    assert len(outbox_files(outbox_dir)) == 7
    assert all(r.attempts == 1 for r in delivery_rows(url, c["complaint_id"]))


def test_a_lifecycle_event_that_overtakes_its_routing_is_sent_once_routing_arrives(
    notification, outbox_dir, amqp_uri, pg_urls
):
    c = new_complaint({"email": EMAIL})
    failed = metric("dumas_event_handler_duration_seconds_count", {
        "service": "notification", "event_type": "complaint_acknowledged", "outcome": "retry"})
    amqp.publish_event(amqp_uri, unit_action("complaint_acknowledged", c, 2))
    wait_for(lambda: metric("dumas_event_handler_duration_seconds_count", {
        "service": "notification", "event_type": "complaint_acknowledged", "outcome": "retry"}
    ) > failed, message="acknowledged before routed: retried later")
    amqp.publish_event(amqp_uri, routed(c))
    wait_for(lambda: sent_count(pg_urls["notification"], c["complaint_id"]) == 3, timeout=20,
             message="routed (2) and acknowledged (1) sent")
    assert {r.template for r in delivery_rows(pg_urls["notification"], c["complaint_id"])} == {
        "complaint_routed", "complaint_acknowledged"}


def test_units_hear_of_information_returns_and_deadlines_and_a_breach_reaches_head_and_desk(
    notification, outbox_dir, amqp_uri, pg_urls
):
    c = new_complaint({"email": EMAIL}, confidentiality="confidential")
    url = pg_urls["notification"]
    returned = handled("complaint_returned")
    amqp.publish_event(amqp_uri, routed(c, unit_code="kua-merigi", summary=""))
    wait_for(lambda: sent_count(url, c["complaint_id"]) == 2, timeout=20)
    amqp.publish_event(amqp_uri, unit_action("complaint_returned", c, 2, unit_code="kua-merigi",
                                             status="routed",
                                             reason="Lokasi kejadian di Kabawetan."))
    wait_for(lambda: handled("complaint_returned") > returned, message="return recorded")
    amqp.publish_event(amqp_uri, routed(c, unit_code="kua-kabawetan", seq=3, summary=""))
    # The added information goes to the unit handling the complaint when it arrives; events of
    # different types travel on different queues, so wait until the re-routing was handled.
    kabawetan_email = UNITS["kua-kabawetan"]["email"]
    wait_for(lambda: any("Dialihkan" in m["subject"]
                         for m in messages_to(outbox_dir, kabawetan_email)),
             timeout=20, message="re-routing told to the new unit")
    amqp.publish_event(amqp_uri, info_added(c))
    wait_for(lambda: sent_count(url, c["complaint_id"]) == 5, timeout=20)
    amqp.publish_event(amqp_uri, sla("complaint_sla_warning", c))
    amqp.publish_event(amqp_uri, sla("complaint_sla_breached", c))
    wait_for(lambda: sent_count(url, c["complaint_id"]) == 9, timeout=20,
             message="warning to the unit, breach to unit, head and desk")

    kabawetan = UNITS["kua-kabawetan"]
    to_unit = {m["subject"]: m for m in messages_to(outbox_dir, kabawetan["email"])}
    rerouted = next(m for s, m in to_unit.items() if "Dialihkan" in s)
    assert "dikembalikan oleh KUA Kecamatan Merigi" in rerouted["text"]
    # confidential: the returning unit's free text is not passed on
    assert "Lokasi kejadian" not in rerouted["text"]
    assert any("Informasi Tambahan Diterima" in s for s in to_unit)
    assert any("Pengingat" in s for s in to_unit)
    assert len(messages_to(outbox_dir, kabawetan["head"]["email"])) == 1
    assert len(messages_to(outbox_dir, UNITS["kankemenag-kepahiang"]["email"])) == 1
    # the complainant of a confidential complaint: the tracking link and nothing else, twice
    # (received + forwarded; then forwarded again after the re-routing)
    mine = messages_to(outbox_dir, EMAIL)
    assert len(mine) == 2
    for m in mine:
        assert m["subject"] == "Pembaruan Status Pengaduan"
        assert "Kabawetan" not in m["text"] and "Merigi" not in m["text"]


def test_an_anonymous_complaint_without_contact_gets_nothing_at_any_step(
    notification, outbox_dir, amqp_uri, pg_urls
):
    c = new_complaint(None, confidentiality="anonymous")
    before = handled("complaint_responded")
    for event in (routed(c), unit_action("complaint_acknowledged", c, 2),
                  unit_action("complaint_responded", c, 3, status="responded", response="Ok.")):
        amqp.publish_event(amqp_uri, event)
    wait_for(lambda: handled("complaint_responded") > before and sent_count(
        pg_urls["notification"], c["complaint_id"]) == 1, timeout=20)
    assert [r.audience for r in delivery_rows(pg_urls["notification"], c["complaint_id"])] == [
        "unit"]
