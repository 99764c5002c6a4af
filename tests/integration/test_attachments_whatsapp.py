"""WhatsApp photos and voice notes as evidence: the webhook answers at once, intake's media
timer fetches each file through a local stand-in of the Cloud API's media endpoints (which
checks the bearer token and the paths), cleans and stores it, and attaches it once, even when
Meta delivers the same webhook twice. Real RabbitMQ and PostgreSQL."""

import io

import pytest
from PIL import Image
from sqlalchemy import select
from support import amqp
from support.databases import rows
from support.evidence_files import GPS_IFD, jpeg_with_gps, ogg_opus_voice_note
from support.intake_channels import intake_config, signed, whatsapp_text
from support.wait import wait_for
from support.whatsapp_media_standin import VERSION, MediaStandIn

from services.intake.db import attachments, complaints, media_downloads
from services.intake.service import IntakeService
from shared.storage import LocalBlobStore

TOKEN = "cloud-api-token-for-media"
SENDER = "6281234567891"


def media_message(message_id, kind, media_id, *, caption=None, voice=False, sender=SENDER):
    media = {"id": media_id, "mime_type": "image/jpeg" if kind == "image" else
             "audio/ogg; codecs=opus"}
    if caption is not None:
        media["caption"] = caption
    if voice:
        media["voice"] = True
    return {"from": sender, "id": message_id, "timestamp": "1700000100", "type": kind,
            kind: media}


def webhook(*messages, sender=SENDER) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "6281100000001",
                             "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Siti"}, "wa_id": sender}],
                "messages": list(messages)}}]}]}


def post_whatsapp(intake, payload):
    raw, headers = signed(payload)
    return intake.post("/webhooks/whatsapp", data=raw, headers=headers)


@pytest.fixture
def media_api(tmp_path):
    with MediaStandIn(tmp_path, token=TOKEN) as api:
        yield api


@pytest.fixture
def intake(start_service, media_api):
    return start_service(IntakeService, **intake_config(), WHATSAPP_BASE_URL=media_api.base_url,
                         WHATSAPP_API_VERSION=VERSION, WHATSAPP_TOKEN=TOKEN,
                         MEDIA_POLL_SECONDS=0.2)


def test_a_photo_and_a_voice_note_are_attached_once_even_when_the_webhook_comes_twice(
        intake, media_api, pg_urls):
    capture = amqp.Capture(intake.config["AMQP_URI"], "intake.events",
                           "complaint_attachment_added")
    post_whatsapp(intake, whatsapp_text("wamid.T1", SENDER,
                                        "Atap kelas MTs Negeri 1 bocor, murid kehujanan."))
    photo, voice = jpeg_with_gps(), ogg_opus_voice_note()
    media_api.add("1001", photo, "image/jpeg")
    media_api.add("1002", voice, "audio/ogg")
    delivery = webhook(media_message("wamid.P1", "image", "1001", caption="Ini fotonya"),
                       media_message("wamid.V1", "audio", "1002", voice=True))

    first = post_whatsapp(intake, delivery)
    again = post_whatsapp(intake, delivery)

    assert first.json()["outcomes"] == ["media_queued", "media_queued"]
    assert again.json()["outcomes"] == ["duplicate_delivery", "duplicate_delivery"]
    stored = wait_for(lambda: (found := rows(pg_urls["intake"], select(attachments)))
                      and len(found) == 2 and found, timeout=20, message="two attachments")
    (complaint,) = rows(pg_urls["intake"], select(complaints))
    assert {a.complaint_id for a in stored} == {complaint.id}
    by_type = {a.media_type: a for a in stored}
    assert set(by_type) == {"image/jpeg", "audio/ogg"}
    assert all(a.channel == "whatsapp" for a in stored)
    blobs = LocalBlobStore(f"{intake.config['DUMAS_VAR_DIR']}/attachments")
    kept_photo = blobs.get(by_type["image/jpeg"].sha256)
    assert GPS_IFD not in Image.open(io.BytesIO(kept_photo)).getexif()
    assert blobs.get(by_type["audio/ogg"].sha256) == voice

    # Each file was looked up and fetched once, with the bearer token, at the documented paths.
    seen = media_api.requests()
    assert sorted(r["path"] for r in seen) == sorted([
        f"/{VERSION}/1001", f"/{VERSION}/1002",
        "/whatsapp_business/attachments/", "/whatsapp_business/attachments/"])
    assert {(r["authorization"], r["answer"]) for r in seen} == {(f"Bearer {TOKEN}", 200)}
    events = wait_for(lambda: len(capture.drain()) >= 2 and capture.messages, timeout=10)
    assert sorted(e[0]["data"]["attachment"]["media_type"] for e in events) == [
        "audio/ogg", "image/jpeg"]
    assert all(e[0]["data"]["complaint_id"] == complaint.id for e in events)
    # The caption reached the complaint as added information.
    assert "Ini fotonya" in intake.get(f"/lacak/{complaint.tracking_code}").text


def test_a_photo_from_a_new_number_starts_a_complaint_with_the_photo_attached(
        intake, media_api, pg_urls):
    capture = amqp.Capture(intake.config["AMQP_URI"], "intake.events", "complaint_received")
    media_api.add("2001", jpeg_with_gps(), "image/jpeg")

    answer = post_whatsapp(intake, webhook(media_message(
        "wamid.N1", "image", "2001", caption="Pungutan liar di madrasah, ini kwitansinya.",
        sender="6281200000002"), sender="6281200000002"))

    assert answer.json()["outcomes"] == ["complaint"]
    (complaint,) = rows(pg_urls["intake"], select(complaints))
    assert complaint.description == "Pungutan liar di madrasah, ini kwitansinya."
    (attached,) = wait_for(lambda: rows(pg_urls["intake"], select(attachments)), timeout=20)
    assert attached.complaint_id == complaint.id
    event = wait_for(lambda: capture.drain())[0][0]
    assert event["data"]["complaint_id"] == complaint.id


def test_a_wrong_token_is_refused_by_the_api_and_nothing_is_attached(start_service, media_api,
                                                                      pg_urls):
    intake = start_service(IntakeService, **intake_config(), WHATSAPP_BASE_URL=media_api.base_url,
                           WHATSAPP_API_VERSION=VERSION, WHATSAPP_TOKEN="stolen-or-expired",
                           MEDIA_POLL_SECONDS=0.2)
    media_api.add("3001", jpeg_with_gps(), "image/jpeg")

    post_whatsapp(intake, webhook(media_message("wamid.W1", "image", "3001")))

    (job,) = wait_for(lambda: rows(pg_urls["intake"], select(media_downloads)
                                   .where(media_downloads.c.state == "failed")), timeout=20)
    assert job.last_error == "HTTP 401"
    assert rows(pg_urls["intake"], select(attachments)) == []
    assert [r["answer"] for r in media_api.requests()] == [401]
