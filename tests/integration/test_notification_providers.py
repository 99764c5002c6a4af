"""notification's real providers against local stand-ins started by the tests: a real SMTP server
(aiosmtpd) and an HTTP server standing in for the WhatsApp Cloud API and the SMS gateway, which
checks path, bearer token and JSON body and answers 200, 429 + Retry-After, 500, 400 or hangs."""

import base64
import uuid

import pytest
from support import amqp
from support.notification_standins import SMS_PATH, WHATSAPP_PATH, HttpStandIn, SmtpStandIn
from support.notification_world import (
    UNITS,
    FakeIntake,
    FakeRouting,
    delivery_rows,
    handled,
    new_complaint,
    published,
    routed,
)
from support.wait import wait_for

from services.notification.domain.planner import delivery_id_for
from services.notification.service import NotificationService

PHONE = "+6281234567890"
TOKEN = "EAAG-test-token"


@pytest.fixture
def smtp(tmp_path):
    with SmtpStandIn(tmp_path, reject="ditolak@=550 5.1.1 No such user") as server:
        yield server


@pytest.fixture
def api(tmp_path):
    with HttpStandIn(tmp_path, token=TOKEN) as server:
        yield server


@pytest.fixture
def start_notification(start_service, api, smtp):
    def start(**overrides):
        start_service(FakeIntake)
        start_service(FakeRouting)
        config = {
            "NOTIFICATION_PROVIDERS": "*.email=smtp,*.whatsapp=whatsapp_cloud,*.sms=sms_http",
            "SMTP_PORT": smtp.port,
            "SMTP_FROM": "dumas@kemenag-kepahiang.example",
            "WHATSAPP_BASE_URL": api.base_url,
            "WHATSAPP_API_VERSION": "v21.0",
            "WHATSAPP_PHONE_NUMBER_ID": "1234567890",
            "WHATSAPP_TOKEN": TOKEN,
            "SMS_GATEWAY_URL": api.sms_url,
            "SMS_GATEWAY_TOKEN": TOKEN,
            "NOTIFICATION_RETRY_BASE_SECONDS": 0.2,
            "NOTIFICATION_RETRY_CAP_SECONDS": 1,
            "NOTIFICATION_MAX_ATTEMPTS": 3,
            "NOTIFICATION_PROVIDER_TIMEOUT": 1,
            "NOTIFICATION_LEASE_SECONDS": 5,
            "EVENT_RETRY_DELAYS_MS": [100, 300],
        }
        config.update(overrides)
        return start_service(NotificationService, **config)

    return start


def whatsapp_complaint(**kw):
    return new_complaint({"phone": PHONE}, channel="whatsapp", **kw)


def rows_by_channel(url, complaint_id):
    return {(r.audience, r.channel): r for r in delivery_rows(url, complaint_id)}


def test_email_arrives_with_subject_recipients_encodings_and_both_parts(
    start_notification, smtp, amqp_uri, pg_urls
):
    start_notification()
    c = new_complaint({"email": "siti.aminah@contoh.id"})
    event = routed(c, unit_name="KUA Kecamatan Kabawetan – Ujicoba “Ä”")
    amqp.publish_event(amqp_uri, event)

    received = wait_for(lambda: len(smtp.messages()) == 2 and smtp.messages(), timeout=20,
                        message="two e-mails at the SMTP server")
    by_rcpt = {env["rcpt_tos"][0]: (env, mail) for env, mail in received}
    assert set(by_rcpt) == {"siti.aminah@contoh.id", UNITS["kua-kabawetan"]["email"]}
    env, mail = by_rcpt["siti.aminah@contoh.id"]
    assert env["mail_from"] == "dumas@kemenag-kepahiang.example"
    assert mail["To"] == "siti.aminah@contoh.id"
    assert "Dumas Kemenag Kepahiang" in mail["From"]
    # the subject has non-ASCII characters: RFC 2047 encoded on the wire, decoded intact
    headers = base64.b64decode(env["data"]).decode("ascii").split("\r\n\r\n", 1)[0]
    assert "=?utf-8?b?" in headers  # and .decode("ascii") proved nothing else is 8-bit
    assert mail["Subject"] == (
        f"Pengaduan {c['tracking_code']} Telah Diteruskan kepada KUA Kecamatan Kabawetan – "
        "Ujicoba “Ä”")
    delivery = delivery_id_for(event["event_id"], "complainant", "complainant", "email")
    assert mail["Message-ID"] == f"<{delivery}@kemenag-kepahiang.example>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"]
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert c["tracking_code"] in text.get_content()
    assert "Ujicoba “Ä”" in text.get_content()
    assert "Ujicoba “Ä”" in html.get_content() and "<!DOCTYPE html>" in html.get_content()


def test_a_refused_mailbox_is_not_retried_and_falls_back_to_nothing_it_lacks(
    start_notification, smtp, amqp_uri, pg_urls
):
    start_notification()
    c = new_complaint({"email": "ditolak@contoh.id"})
    amqp.publish_event(amqp_uri, routed(c))
    url = pg_urls["notification"]
    wait_for(lambda: rows_by_channel(url, c["complaint_id"]).get(("complainant", "email"))
             and rows_by_channel(url, c["complaint_id"])[("complainant", "email")].status
             == "failed", timeout=20, message="the complainant's e-mail failed for good")
    row = rows_by_channel(url, c["complaint_id"])[("complainant", "email")]
    assert row.attempts == 1  # 550: permanent, no retry
    assert "550" in row.last_error
    failed = wait_for(lambda: published(url, "notification_failed"))
    assert [f["data"]["delivery_id"] for f in failed] == [row.id]
    # e-mail is the last channel of the complainant's chain: no other message is invented
    assert len(smtp.messages()) == 1  # the unit's


def test_whatsapp_rate_limit_and_outage_are_retried_with_back_off_and_sent_once(
    start_notification, api, amqp_uri, pg_urls
):
    start_notification()
    api.script([{"status": 429, "retry_after": 2}, {"status": 500}], path=WHATSAPP_PATH)
    c = whatsapp_complaint()
    event = routed(c)
    amqp.publish_event(amqp_uri, event)
    url = pg_urls["notification"]

    wait_for(lambda: len(api.delivered(WHATSAPP_PATH)) == 1, timeout=30,
             message="the WhatsApp message delivered")
    calls = api.requests(WHATSAPP_PATH)
    assert [c_["answer"] for c_ in calls] == [429, 500, 200]
    assert all(call["problem"] is None for call in calls)  # path, token and body were right
    assert calls[0]["authorization"] == f"Bearer {TOKEN}"
    # Retry-After: 2 was honoured (the second try came no earlier than 2 s after the first)
    assert calls[1]["at"] - calls[0]["at"] >= 2
    body = calls[-1]["body"]
    assert body["to"] == "6281234567890"
    # the complainant wrote on WhatsApp minutes ago: a free-form reply inside the 24 h window
    assert body["type"] == "text" and c["tracking_code"] in body["text"]["body"]
    row = rows_by_channel(url, c["complaint_id"])[("complainant", "whatsapp")]
    assert (row.status, row.attempts) == ("sent", 3)
    assert row.provider_message_id == "wamid.3"

    # the same event three more times: still one message
    before = handled("complaint_routed")
    for _ in range(3):
        amqp.publish_event(amqp_uri, event)
    wait_for(lambda: handled("complaint_routed") - before >= 3)
    wait_for(lambda: amqp.queue_depth(amqp_uri, "notification.complaint_routed") == 0)
    assert len(api.delivered(WHATSAPP_PATH)) == 1
    assert len(api.requests(WHATSAPP_PATH)) == 3


def test_a_whatsapp_outage_parks_the_delivery_and_falls_back_to_sms(
    start_notification, api, amqp_uri, pg_urls
):
    start_notification()
    api.script([], default={"status": 500}, path=WHATSAPP_PATH)
    c = whatsapp_complaint()
    amqp.publish_event(amqp_uri, routed(c))
    url = pg_urls["notification"]

    wait_for(lambda: len(api.delivered(SMS_PATH)) == 1, timeout=30, message="the SMS fallback")
    assert [r["answer"] for r in api.requests(WHATSAPP_PATH)] == [500, 500, 500]  # max 3
    rows = rows_by_channel(url, c["complaint_id"])
    assert rows[("complainant", "whatsapp")].status == "failed"
    assert rows[("complainant", "sms")].status == "sent"
    assert rows[("complainant", "sms")].fallback_of == rows[("complainant", "whatsapp")].id
    sms = api.delivered(SMS_PATH)[0]["body"]
    assert sms["to"] == PHONE and c["tracking_code"] in sms["message"]
    assert sms["reference"] == rows[("complainant", "sms")].id
    failed = wait_for(lambda: published(url, "notification_failed"))
    assert [(f["data"]["channel"], f["data"]["provider"]) for f in failed] == [
        ("whatsapp", "whatsapp_cloud")]


def test_a_rejected_whatsapp_message_is_not_retried(start_notification, api, amqp_uri, pg_urls):
    start_notification(NOTIFICATION_FALLBACK="complainant=whatsapp")
    api.script([{"status": 400}], path=WHATSAPP_PATH)
    c = whatsapp_complaint()
    amqp.publish_event(amqp_uri, routed(c))
    url = pg_urls["notification"]
    wait_for(lambda: published(url, "notification_failed"), timeout=20)
    row = rows_by_channel(url, c["complaint_id"])[("complainant", "whatsapp")]
    assert (row.status, row.attempts) == ("failed", 1)
    assert "HTTP 400 (code 4000)" in row.last_error
    assert len(api.requests(WHATSAPP_PATH)) == 1


def test_a_hanging_provider_times_out_and_never_holds_up_other_messages(
    start_notification, api, amqp_uri, pg_urls
):
    start_notification()
    api.script([{"hang": True, "hang_seconds": 30}], path=WHATSAPP_PATH)
    first = whatsapp_complaint()
    amqp.publish_event(amqp_uri, routed(first))
    wait_for(lambda: api.requests(WHATSAPP_PATH), message="the first request hangs")
    # while WhatsApp hangs, another complaint is planned and its e-mails go out
    second = new_complaint({"email": f"{uuid.uuid4().hex[:8]}@contoh.id"})
    amqp.publish_event(amqp_uri, routed(second))
    url = pg_urls["notification"]
    wait_for(lambda: all(r.status == "sent" for r in delivery_rows(url, second["complaint_id"]))
             and len(delivery_rows(url, second["complaint_id"])) == 2, timeout=20)

    # after the 1 s timeout the delivery is retried and the stand-in answers at once
    wait_for(lambda: rows_by_channel(url, first["complaint_id"])[
        ("complainant", "whatsapp")].status == "sent", timeout=20)
    row = rows_by_channel(url, first["complaint_id"])[("complainant", "whatsapp")]
    assert row.attempts == 2
    assert [r["answer"] for r in api.requests(WHATSAPP_PATH)] == ["hang", 200]
    api.release()
    # The held request still reaches the person when the provider carries on regardless:
    # that is the duplicate a timeout can cause (docs/notifications.md).
    wait_for(lambda: len(api.delivered(WHATSAPP_PATH)) == 2)
