"""Provider message building, error mapping, retry policy and configuration (no network)."""

from datetime import UTC, datetime, timedelta

import pytest

from services.notification.channels import (
    HttpSmsProvider,
    SmtpProvider,
    WhatsAppCloudProvider,
    international_number,
    retry_after_seconds,
)
from services.notification.domain.render import RenderedMessage
from services.notification.handlers import backoff, next_channel
from services.notification.providers import PermanentProviderError
from services.notification.settings import ConfigError, Settings, parse_routes

MESSAGE = RenderedMessage("Subjek – uji", "Baris 1\nBaris 2", "<p>Baris</p>", "Satu baris SMS")


def whatsapp(mode="auto"):
    return WhatsAppCloudProvider(base_url="http://x/", version="v21.0", phone_number_id="42",
                                 token="t", mode=mode)


def test_whatsapp_uses_text_inside_the_reply_window_and_a_template_outside():
    wa = whatsapp()
    assert wa.url == "http://x/v21.0/42/messages"
    text = wa.body("+62 812-3456-7890", MESSAGE, reply_window_open=True)
    assert text["type"] == "text" and text["text"]["body"] == "Baris 1\nBaris 2"
    assert text["to"] == "6281234567890"
    template = wa.body("0812-3456-7890", MESSAGE, reply_window_open=False)
    assert template["type"] == "template"
    assert template["to"] == "6281234567890"
    assert template["template"]["language"] == {"code": "id"}
    assert template["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Satu baris SMS"}]
    assert whatsapp("template").body("081234567890", MESSAGE, True)["type"] == "template"


def test_numbers_are_checked_before_sending():
    with pytest.raises(PermanentProviderError):
        international_number("12")


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("Mon, 30 Nov 2026 03:00:30 GMT", now) == 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_email_has_both_parts_and_deterministic_headers():
    smtp = SmtpProvider(host="h", sender="dumas@kemenag.example")
    mail = smtp.build("abc-123", "siti@contoh.id", MESSAGE)
    assert mail["Message-ID"] == "<abc-123@kemenag.example>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Subject"] == "Subjek – uji"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    with pytest.raises(PermanentProviderError):
        smtp.build("abc", "not an address", MESSAGE)


def test_sms_body_carries_the_delivery_id_as_reference():
    sms = HttpSmsProvider(url="http://x/sms")
    assert sms.url == "http://x/sms"


def test_back_off_grows_exponentially_with_jitter_and_a_cap():
    s = Settings.from_config({"NOTIFICATION_RETRY_BASE_SECONDS": 10,
                              "NOTIFICATION_RETRY_CAP_SECONDS": 60})
    assert backoff(1, s, rng=lambda: 1.0) == timedelta(seconds=10)
    assert backoff(3, s, rng=lambda: 1.0) == timedelta(seconds=40)
    assert backoff(3, s, rng=lambda: 0.0) == timedelta(seconds=20)
    assert backoff(9, s, rng=lambda: 1.0) == timedelta(seconds=60)


def test_provider_routes_and_fallback_chains_come_from_configuration():
    routes = parse_routes("*.email=smtp,complainant.whatsapp=whatsapp_cloud,*=file")
    assert routes[("unit", "email")] == "smtp"
    assert routes[("complainant", "whatsapp")] == "whatsapp_cloud"
    assert routes[("unit", "whatsapp")] == "file"
    with pytest.raises(ConfigError):
        parse_routes("*.email=carrier_pigeon")
    s = Settings.from_config({"NOTIFICATION_FALLBACK": "complainant=whatsapp>sms>email"})
    assert next_channel(s, "complainant", "whatsapp") == "sms"
    assert next_channel(s, "complainant", "email") is None
    assert next_channel(s, "unit", "email") is None
    with pytest.raises(ConfigError):
        Settings.from_config({"NOTIFICATION_LEASE_SECONDS": 5})
