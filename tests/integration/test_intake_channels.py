"""intake's channels on real RabbitMQ and PostgreSQL: partner API (keys, idempotency, limits),
WhatsApp webhook, AMQP intake, Open311, OpenAPI, duplicates, confidential data at rest,
lifecycle events on the tracking view."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from openapi_spec_validator import validate as validate_openapi
from sqlalchemy import func, select
from support import amqp
from support.databases import rows
from support.intake_channels import (
    API_KEY,
    SITE_KEY,
    VERIFY_TOKEN,
    intake_config,
    signed,
    whatsapp_status,
    whatsapp_text,
)
from support.wait import wait_for

from services.intake.db import complainants, complaint_messages, complaints, idempotency
from services.intake.service import IntakeService
from shared.contracts import build_event

DESCRIPTION = "Pendaftaran nikah di KUA Merigi sudah dua minggu belum diproses petugas."


def body(**overrides):
    data = {
        "category": "nikah_rujuk",
        "description": DESCRIPTION,
        "kecamatan_code": "17.08.05",
        "complainant": {"name": "Budi", "phone": "0812-3456-7890"},
    }
    data.update(overrides)
    return data


@pytest.fixture
def intake(start_service):
    return start_service(IntakeService, **intake_config())


def count(url, table=complaints):
    return rows(url, select(func.count()).select_from(table))[0][0]


# -- partner API --------------------------------------------------------------------------------


def test_a_partner_key_attributes_the_complaint_to_its_channel(intake, pg_urls):
    response = intake.post("/api/v1/complaints", json=body(), headers={"X-API-Key": API_KEY})

    assert response.status_code == 201
    row = rows(pg_urls["intake"], select(complaints).where(
        complaints.c.tracking_code == response.json()["tracking_code"]))[0]
    assert row.channel == "rumah_digital"


def test_a_key_with_a_unit_target_makes_a_trusted_hint_and_no_key_is_web(intake, pg_urls):
    keyed = intake.post("/api/v1/complaints", json=body(description="Ijazah MTs belum "
                        "diberikan padahal sudah lulus"), headers={"X-API-Key": SITE_KEY})
    public = intake.post("/api/v1/complaints", json=body(channel="rumah_digital",
                         complainant={"email": "lain@contoh.id"}))

    assert keyed.status_code == public.status_code == 201
    k = rows(pg_urls["intake"], select(complaints).where(
        complaints.c.tracking_code == keyed.json()["tracking_code"]))[0]
    p = rows(pg_urls["intake"], select(complaints).where(
        complaints.c.tracking_code == public.json()["tracking_code"]))[0]
    assert (k.channel, k.unit_hint, k.unit_hint_trusted) == ("website", "madrasah-x", True)
    assert (p.channel, p.unit_hint_trusted) == ("web", False)


def test_an_unknown_api_key_is_refused(intake):
    response = intake.post("/api/v1/complaints", json=body(), headers={"X-API-Key": "x" * 20})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_the_same_idempotency_key_and_body_gives_the_same_answer_and_one_complaint(
    intake, pg_urls
):
    headers = {"Idempotency-Key": "req-42"}
    first = intake.post("/api/v1/complaints", json=body(), headers=headers)
    again = intake.post("/api/v1/complaints", json=body(), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(pg_urls["intake"]) == 1


def test_the_same_idempotency_key_with_another_body_is_a_conflict(intake, pg_urls):
    headers = {"Idempotency-Key": "req-43"}
    assert intake.post("/api/v1/complaints", json=body(), headers=headers).status_code == 201

    other = intake.post("/api/v1/complaints", json=body(category="wakaf"), headers=headers)

    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert count(pg_urls["intake"]) == 1


def test_a_partner_over_its_limit_gets_429_with_retry_after(intake):
    headers = {"X-API-Key": API_KEY}  # limit 3/60: 3 at once, one more every 20 s
    answers = [
        intake.post("/api/v1/complaints", json=body(complainant={"email": f"p{i}@contoh.id"}),
                    headers=headers).status_code
        for i in range(4)
    ]

    assert answers == [201, 201, 201, 429]
    refused = intake.post("/api/v1/complaints", json=body(), headers=headers)
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    # the public bucket (per IP) is separate
    assert intake.post("/api/v1/complaints", json=body(
        complainant={"email": "umum@contoh.id"})).status_code == 201


def test_public_requests_are_limited_per_ip(start_service):
    service = start_service(IntakeService, **intake_config(), RATE_LIMIT_IP="2/6")
    answers = [
        service.post("/api/v1/complaints",
                     json=body(complainant={"email": f"ip{i}@contoh.id"})).status_code
        for i in range(3)
    ]
    refused = service.post("/api/v1/complaints", json=body())

    assert answers == [201, 201, 429]
    assert 1 <= int(refused.headers["Retry-After"]) <= 10


def test_oversize_and_malformed_bodies_are_refused_with_codes(intake, pg_urls):
    big = intake.post("/api/v1/complaints", data=b"{" + b" " * (65 * 1024) + b"}",
                      headers={"Content-Type": "application/json"})
    broken = intake.post("/api/v1/complaints", data=b'{"category": ',
                         headers={"Content-Type": "application/json"})

    assert (big.status_code, big.json()["error"]["code"]) == (413, "payload_too_large")
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_json")
    assert count(pg_urls["intake"]) == 0


def test_the_same_contact_with_a_near_identical_text_is_linked_to_the_earlier_complaint(
    intake, pg_urls
):
    first = intake.post("/api/v1/complaints", json=body()).json()
    again = intake.post("/api/v1/complaints", json=body(
        description=DESCRIPTION.replace("belum diproses", "blm diproses"),
        complainant={"name": "Budi", "phone": "+62 812 3456 7890"},
    ))
    different = intake.post("/api/v1/complaints", json=body(
        description="Guru madrasah belum menerima tunjangan sertifikasi tahun ini."))

    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["tracking_code"] == first["tracking_code"]
    assert first["tracking_code"] in again.json()["message"]
    assert different.status_code == 201
    assert count(pg_urls["intake"]) == 2
    links = rows(pg_urls["intake"], select(complaint_messages.c.kind))
    assert [r.kind for r in links] == ["duplicate"]


def test_confidential_personal_data_is_encrypted_at_rest_and_still_reachable_for_notification(
    intake, pg_urls
):
    from nameko.standalone.rpc import ClusterRpcProxy

    response = intake.post("/api/v1/complaints", json=body(confidentiality="confidential"))
    assert response.status_code == 201
    stored = rows(pg_urls["intake"], select(complainants))[0]

    assert (stored.name, stored.phone, stored.email) == (None, None, None)
    assert "Budi" not in stored.sealed and "81234567890" not in stored.sealed
    with ClusterRpcProxy({"AMQP_URI": intake.config["AMQP_URI"]}) as rpc:
        contact = rpc.intake.get_contact(stored.complaint_id)
    assert (contact["name"], contact["phone"]) == ("Budi", "+6281234567890")


def test_the_openapi_document_validates_as_openapi_3(intake):
    document = intake.get("/api/openapi.json").json()

    validate_openapi(document)
    assert document["openapi"].startswith("3.")
    assert "/api/v1/complaints" in document["paths"]
    submission = document["components"]["schemas"]["ComplaintSubmission"]
    assert submission["properties"]["description"]["maxLength"] == 4000
    docs = intake.get("/api/docs")
    assert docs.status_code == 200 and "POST /api/v1/complaints" in docs.text


# -- WhatsApp -----------------------------------------------------------------------------------


def post_whatsapp(intake, payload, **kw):
    raw, headers = signed(payload, **kw)
    return intake.post("/webhooks/whatsapp", data=raw, headers=headers)


def test_the_webhook_verification_handshake(intake):
    ok = intake.get("/webhooks/whatsapp", params={
        "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"})
    wrong = intake.get("/webhooks/whatsapp", params={
        "hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})

    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert wrong.status_code == 403


def test_a_signed_text_message_becomes_a_complaint_with_the_sender_as_contact(intake, pg_urls):
    capture = amqp.Capture(intake.config["AMQP_URI"], "intake.events", "complaint_received")
    response = post_whatsapp(intake, whatsapp_text(
        "wamid.A1", "6281234567890", "Sudah dua minggu surat rekomendasi nikah belum keluar."))

    assert response.status_code == 200
    assert response.json()["outcomes"] == ["complaint"]
    row = rows(pg_urls["intake"], select(complaints))[0]
    person = rows(pg_urls["intake"], select(complainants))[0]
    assert row.channel == "whatsapp"
    assert (person.name, person.phone) == ("Siti", "+6281234567890")
    event = wait_for(lambda: capture.drain())[0][0]
    assert event["data"]["contact_channels"] == ["phone", "whatsapp"]
    assert "6281234567890" not in json.dumps(event)


@pytest.mark.parametrize("headers", [
    {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    {},
], ids=["wrong signature", "missing signature"])
def test_a_webhook_without_a_valid_signature_is_401_and_stores_nothing(intake, pg_urls, headers):
    raw = json.dumps(whatsapp_text("wamid.B1", "6281234567890", "Pelayanan sangat lambat sekali"))

    response = intake.post("/webhooks/whatsapp", data=raw,
                           headers={"Content-Type": "application/json", **headers})

    assert response.status_code == 401
    assert count(pg_urls["intake"]) == 0
    assert count(pg_urls["intake"], idempotency) == 0


def test_a_signature_made_with_another_secret_is_refused(intake, pg_urls):
    response = post_whatsapp(intake, whatsapp_text("wamid.B2", "6281234567890",
                                                   "Pelayanan sangat lambat sekali"),
                             secret="not-the-app-secret")
    assert response.status_code == 401
    assert count(pg_urls["intake"]) == 0


def test_the_same_whatsapp_message_id_twice_makes_one_complaint(intake, pg_urls):
    payload = whatsapp_text("wamid.C1", "6281234567891", "Bantuan madrasah belum cair sejak Maret")

    first = post_whatsapp(intake, payload)
    again = post_whatsapp(intake, payload)

    assert first.json()["outcomes"] == ["complaint"]
    assert again.json()["outcomes"] == ["duplicate_delivery"]
    assert count(pg_urls["intake"]) == 1


def test_a_status_update_is_recorded_and_makes_no_complaint(intake, pg_urls):
    response = post_whatsapp(intake, whatsapp_status("wamid.OUT1", "delivered"))

    assert response.status_code == 200
    assert response.json()["outcomes"] == ["status"]
    assert count(pg_urls["intake"]) == 0
    recorded = rows(pg_urls["intake"], select(idempotency.c.key))
    assert [r.key for r in recorded] == ["status:wamid.OUT1:delivered"]


def test_a_follow_up_is_attached_to_the_open_complaint_unless_a_new_one_is_asked_for(
    intake, pg_urls
):
    capture = amqp.Capture(intake.config["AMQP_URI"], "intake.events", "complaint_info_added")
    post_whatsapp(intake, whatsapp_text("wamid.D1", "6281234567892",
                                        "Buku nikah saya belum jadi sejak bulan lalu."))
    follow = post_whatsapp(intake, whatsapp_text("wamid.D2", "6281234567892",
                                                 "Nomor pendaftaran saya 123/2025"))
    new = post_whatsapp(intake, whatsapp_text("wamid.D3", "6281234567892",
                                              "baru: Arah kiblat masjid desa kami perlu dicek."))

    assert follow.json()["outcomes"] == ["info_added"]
    assert new.json()["outcomes"] == ["complaint"]
    assert count(pg_urls["intake"]) == 2
    event = wait_for(lambda: capture.drain())[0][0]
    assert event["data"]["text"] == "Nomor pendaftaran saya 123/2025"
    assert event["data"]["channel"] == "whatsapp"


# -- AMQP intake --------------------------------------------------------------------------------


def submitted(message_id, **overrides):
    data = {"message_id": message_id, "channel": "rumah_digital", "category": "wakaf",
            "description": "Sertifikat tanah wakaf masjid kami belum terbit sejak 2023.",
            "kecamatan_code": "17.08.05", "confidentiality": "public",
            "complainant": {"name": "Ahmad", "phone": "081299998888", "email": None}}
    data.update(overrides)
    return data


def test_amqp_intake_takes_a_valid_message_and_parks_a_malformed_one(intake, pg_urls):
    from services.intake.channel_client import ChannelPublisher

    uri = intake.config["AMQP_URI"]
    with ChannelPublisher(uri) as publisher:
        publisher.submit(submitted("rd-1"))
        publisher.submit(submitted("rd-1"))  # resent: still one complaint
    bad = build_event("complaint_submitted", submitted("rd-2", kecamatan_code="17.08.99"),
                      correlation_id="rd-2")
    amqp.publish_event(uri, bad)

    dead = "intake.complaint_submitted.dead"
    parked = wait_for(lambda: amqp.get_all(uri, dead), message="parked message")
    assert parked[0][0]["data"]["message_id"] == "rd-2"
    assert parked[0][1]["x-dumas-reason"] == "invalid_submission"
    assert "kecamatan_code" in parked[0][1]["x-dumas-error"]
    wait_for(lambda: count(pg_urls["intake"]) == 1)
    row = rows(pg_urls["intake"], select(complaints))[0]
    assert (row.channel, row.category) == ("rumah_digital", "wakaf")
    # the consumer keeps consuming after the malformed message
    amqp.publish(uri, "channels.events", "complaint_submitted", b"not json at all")
    with ChannelPublisher(uri) as publisher:
        publisher.submit(submitted("rd-3", description="Zakat fitrah di desa kami tidak "
                                   "disalurkan ke mustahik yang berhak."))
    wait_for(lambda: count(pg_urls["intake"]) == 2)
    assert amqp.queue_depth(uri, dead) == 1


# -- Open311 ------------------------------------------------------------------------------------


def test_open311_round_trip(intake):
    services = intake.get("/open311/v2/services.json").json()
    assert {"service_code": "nikah_rujuk", "service_name": "Nikah dan Rujuk"}.items() <= \
        services[0].items()

    created = intake.post("/open311/v2/requests.json", data={
        "service_code": "kemasjidan", "description": "Arah kiblat masjid desa perlu diukur ulang.",
        "first_name": "Rahmat", "email": "rahmat@contoh.id", "lat": "-3.64", "long": "102.58",
        "attribute[kecamatan_code]": "17.08.05",
    })
    assert created.status_code == 201
    request_id = created.json()[0]["service_request_id"]

    one = intake.get(f"/open311/v2/requests/{request_id}.json").json()[0]
    assert (one["service_request_id"], one["status"], one["service_code"]) == (
        request_id, "open", "kemasjidan")
    listed = intake.get("/open311/v2/requests.json", params={"service_request_id": request_id})
    assert [r["service_request_id"] for r in listed.json()] == [request_id]
    assert request_id in [r["service_request_id"] for r in intake.get(
        "/open311/v2/requests.json", params={"status": "open"}).json()]


def test_open311_errors_use_the_spec_format(intake):
    bad = intake.post("/open311/v2/requests.json", data={"service_code": "sengketa",
                                                          "description": "pendek"})
    missing = intake.get("/open311/v2/requests/DMS-2222-2222-2222.json")

    assert bad.status_code == 400
    assert all(set(e) == {"code", "description"} and e["code"] == 400 for e in bad.json())
    assert missing.status_code == 404
    assert missing.json()[0]["code"] == 404


# -- lifecycle from routing ---------------------------------------------------------------------


def action(event_type, complaint_id, code, seq, status, **extra):
    data = {"complaint_id": complaint_id, "tracking_code": code, "unit_code": "kua-merigi",
            "actor_role": "unit_operator", "status": status, "seq": seq,
            "at": datetime.now(UTC) + timedelta(seconds=seq)}
    data.update(extra)
    return build_event(event_type, data, correlation_id=complaint_id)


def test_every_transition_is_shown_and_a_late_event_never_moves_the_status_back(
    intake, pg_urls
):
    code = intake.post("/api/v1/complaints", json=body()).json()["tracking_code"]
    complaint_id = rows(pg_urls["intake"], select(complaints.c.id))[0].id
    uri = intake.config["AMQP_URI"]
    now = datetime.now(UTC)
    amqp.publish_event(uri, build_event("complaint_routed", {
        "complaint_id": complaint_id, "tracking_code": code, "unit_code": "kua-merigi",
        "unit_name": "KUA Kecamatan Merigi", "unit_type": "kua", "stage": "pilot",
        "rule": "kua_kecamatan", "reason": "wilayah", "category": "nikah_rujuk",
        "channel": "web", "confidentiality": "public", "contact_channels": ["phone"],
        "routed_at": now, "due_at": now + timedelta(days=3), "status": "routed", "seq": 1,
    }, correlation_id=complaint_id))
    amqp.publish_event(uri, action("complaint_responded", complaint_id, code, 3, "responded",
                                   response="Berkas Anda sudah kami proses."))
    wait_for(lambda: intake.get(f"/api/v1/complaints/{code}").json()["status"] == "responded")
    amqp.publish_event(uri, action("complaint_acknowledged", complaint_id, code, 2,
                                   "acknowledged"))

    def four_entries():
        current = intake.get(f"/api/v1/complaints/{code}").json()
        return current if len(current["history"]) == 4 else None

    view = wait_for(four_entries, message="four history entries")

    assert view["status"] == "responded"
    assert [h["status"] for h in view["history"]] == [
        "received", "routed", "acknowledged", "responded"]
    assert view["expected_at"] is not None
    page = intake.get(f"/lacak/{code}").text
    assert "Berkas Anda sudah kami proses." in page


def test_a_resolved_complaint_can_be_rated_once_from_the_tracking_page(intake, pg_urls):
    code = intake.post("/api/v1/complaints", json=body()).json()["tracking_code"]
    complaint_id = rows(pg_urls["intake"], select(complaints.c.id))[0].id
    capture = amqp.Capture(intake.config["AMQP_URI"], "intake.events", "complaint_rated")
    amqp.publish_event(intake.config["AMQP_URI"], action(
        "complaint_resolved", complaint_id, code, 4, "resolved", resolution="Selesai."))
    wait_for(lambda: "Beri penilaian" in intake.get(f"/lacak/{code}").text)
    token = intake.http.cookies.get("dumas_form")

    rated = intake.post(f"/lacak/{code}/nilai", data={"csrf": token, "rating": "5"},
                        allow_redirects=False)
    twice = intake.post(f"/lacak/{code}/nilai", data={"csrf": token, "rating": "1"})

    assert rated.status_code == 303
    assert twice.status_code == 400
    event = wait_for(lambda: capture.drain())[0][0]
    assert event["data"]["rating"] == 5
    assert uuid.UUID(event["data"]["complaint_id"])
