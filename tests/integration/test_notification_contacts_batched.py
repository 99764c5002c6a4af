"""Complainant sends that are due together share one intake.get_contacts call, and sends that
finish together share one "mark sent" transaction (issue 8). The contact stays personal data of
intake: asked for at send time, answered for each complaint as get_contact would, never stored
by notification."""

import uuid

import pytest
from kombu import Connection
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, select
from support import amqp
from support.intake_channels import intake_config
from support.notification_world import (
    CONTACT_CALLS,
    CONTACTS,
    FakeRouting,
    delivery_rows,
    metric,
    new_complaint,
    outbox_files,
    routed,
)
from support.notification_world import FakeIntake as BatchedIntake
from support.wait import wait_for

from services.intake.db import complainants, complaints
from services.intake.service import IntakeService
from services.notification.service import NotificationService
from shared.outbox import declare_subscriber_queues


def waiting_in_queue(amqp_uri, complaints_):
    """Publish their complaint_routed before notification runs: its first batch takes them all."""
    with Connection(amqp_uri) as conn:
        declare_subscriber_queues(conn.default_channel, "routing.events")
    for c in complaints_:
        amqp.publish_event(amqp_uri, routed(c))


def all_sent(url, complaints_):
    rows = [r for c in complaints_ for r in delivery_rows(url, c["complaint_id"])]
    return len(rows) == 2 * len(complaints_) and all(r.status == "sent" for r in rows)


def mark_batches() -> tuple[float, float]:
    """(batches, deliveries) marked sent so far in this process."""
    name = "dumas_notification_mark_sent_batch_size"
    return metric(f"{name}_count", {}), metric(f"{name}_sum", {})


def test_complainants_due_together_are_looked_up_in_one_call_and_marked_sent_together(
        start_service, amqp_uri, pg_urls, tmp_path):
    complaints_ = [new_complaint({"email": f"warga{i}@contoh.id"}) for i in range(8)]
    waiting_in_queue(amqp_uri, complaints_)
    CONTACT_CALLS.clear()
    batches_before, marked_before = mark_batches()
    start_service(BatchedIntake)
    start_service(FakeRouting)
    start_service(NotificationService, NOTIFICATION_SEND_CONCURRENCY=20)

    wait_for(lambda: all_sent(pg_urls["notification"], complaints_), timeout=30,
             message="every delivery sent")

    asked = [cid for call in CONTACT_CALLS for cid in call]
    assert sorted(asked) == sorted(c["complaint_id"] for c in complaints_)  # each once
    assert len(CONTACT_CALLS) < len(complaints_)
    assert max(len(call) for call in CONTACT_CALLS) > 1
    batches, marked = mark_batches()
    assert marked - marked_before == 16
    assert batches - batches_before < 16  # some sends shared their transaction
    # each complainant got the message at the address intake gave for that complaint
    files = outbox_files(tmp_path / "outbox")
    to = {f["to"] for f in files}
    assert {CONTACTS[c["complaint_id"]]["email"] for c in complaints_} <= to


# -- intake's side ------------------------------------------------------------------------


@pytest.fixture
def intake(start_service):
    return start_service(IntakeService, **intake_config())


def submit(intake, confidentiality, name, phone):
    response = intake.post("/api/v1/complaints", json={
        "channel": "web", "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
        "description": f"Pendaftaran nikah {name} di KUA Merigi belum diproses dua minggu",
        "confidentiality": confidentiality,
        "complainant": {"name": name, "phone": phone, "email": f"{name.lower()}@contoh.id"},
    })
    assert response.status_code == 201, response.text
    engine = create_engine(intake.config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return conn.execute(select(complaints.c.id).where(
                complaints.c.tracking_code == response.json()["tracking_code"])).scalar_one()
    finally:
        engine.dispose()


def test_get_contacts_answers_each_complaint_as_get_contact_does_in_one_call(intake, amqp_uri):
    public = submit(intake, "public", "Budi", "0812-3456-7890")
    confidential = submit(intake, "confidential", "Sari", "0812-3456-7891")
    anonymous = submit(intake, "anonymous", "Tono", "0812-3456-7892")
    unknown = str(uuid.uuid4())
    engine = create_engine(intake.config["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            sealed = conn.execute(select(complainants.c.name).where(
                complainants.c.complaint_id == confidential)).scalar_one()
    finally:
        engine.dispose()
    assert sealed is None  # encrypted at rest, still answered

    with ClusterRpcProxy({"AMQP_URI": amqp_uri}) as rpc:
        together = rpc.intake.get_contacts([public, confidential, anonymous, unknown])
        one_by_one = {c: rpc.intake.get_contact(c)
                      for c in (public, confidential, anonymous, unknown)}

    assert together == one_by_one
    assert together[public] == {"name": "Budi", "phone": "+6281234567890",
                                "email": "budi@contoh.id", "channel": "web"}
    assert together[confidential]["name"] == "Sari"
    assert together[anonymous] is None and together[unknown] is None
