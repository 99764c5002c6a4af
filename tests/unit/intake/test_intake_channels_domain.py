"""Domain pieces of intake's channels: QR tokens, rate limits, duplicates, WhatsApp payloads,
API keys, sealing, Open311 mapping, the seq rule of the lifecycle."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain import duplicates, open311, qrtoken, whatsapp
from services.intake.domain.apikeys import ApiKeys
from services.intake.domain.complaint import can_rate, can_reopen, seq_applies
from services.intake.domain.ratelimit import Limit, RateLimiter
from services.intake.domain.sealing import PersonalDataBox, SealBroken, new_key

SECRET = b"poster-secret"


def test_a_signed_qr_token_verifies_to_its_unit_and_location():
    token = qrtoken.sign(SECRET, "kua-merigi", "ruang-ptsp")
    assert qrtoken.verify(SECRET, token) == qrtoken.PosterTarget("kua-merigi", "ruang-ptsp")


@pytest.mark.parametrize("mutate", [
    lambda t: t.replace("kua-merigi", "kua-kepahiang"),
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: t + ".extra",
    lambda t: "",
    lambda t: None,
])
def test_a_tampered_or_malformed_qr_token_is_no_token(mutate):
    assert qrtoken.verify(SECRET, mutate(qrtoken.sign(SECRET, "kua-merigi", "ptsp"))) is None


def test_a_token_signed_with_another_secret_is_refused():
    assert qrtoken.verify(SECRET, qrtoken.sign(b"other", "kua-merigi", "ptsp")) is None


def test_the_bucket_refuses_after_the_burst_and_says_when_to_retry():
    limiter, limit = RateLimiter(), Limit.parse("2/6")  # one token every 10 s
    assert limiter.take("ip:1", limit, 100.0).allowed
    assert limiter.take("ip:1", limit, 100.0).allowed
    refused = limiter.take("ip:1", limit, 100.0)
    assert (refused.allowed, refused.retry_after) == (False, 10)
    assert limiter.take("ip:1", limit, 104.0).retry_after == 6
    assert limiter.take("ip:1", limit, 110.0).allowed
    assert limiter.take("ip:2", limit, 110.0).allowed  # another source has its own bucket


def test_a_near_identical_text_within_a_week_is_a_duplicate_and_an_old_one_is_not():
    now = datetime(2025, 3, 10, tzinfo=UTC)
    earlier = [
        ("old", "Buku nikah saya belum jadi sejak bulan lalu", now - timedelta(days=8)),
        ("recent", "Buku nikah saya belum jadi sejak bulan lalu!", now - timedelta(days=2)),
    ]
    assert duplicates.find_duplicate("buku nikah saya  belum jadi sejak bulan lalu", earlier,
                                     now) == "recent"
    assert duplicates.find_duplicate("Arah kiblat masjid kami perlu diukur", earlier,
                                     now) is None


def test_whatsapp_signature_is_hmac_sha256_of_the_raw_body():
    raw = b'{"object":"whatsapp_business_account"}'
    good = "sha256=" + hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert whatsapp.signature_valid(raw, good, "s3cret")
    assert not whatsapp.signature_valid(raw + b" ", good, "s3cret")
    assert not whatsapp.signature_valid(raw, None, "s3cret")
    assert not whatsapp.signature_valid(raw, good, "")


def test_whatsapp_payload_items_are_texts_statuses_and_unsupported_types():
    value = {
        "contacts": [{"profile": {"name": "Siti"}, "wa_id": "628123"}],
        "messages": [
            {"from": "628123", "id": "wamid.1", "type": "text", "text": {"body": "halo"}},
            {"from": "628123", "id": "wamid.2", "type": "image", "image": {}},
        ],
        "statuses": [{"id": "wamid.9", "status": "read"}],
    }
    items = whatsapp.parse({"object": "whatsapp_business_account",
                            "entry": [{"changes": [{"value": value}]}]})
    assert items == [
        whatsapp.InboundText("wamid.1", "628123", "Siti", "halo"),
        whatsapp.Ignored("msg:wamid.2", "unsupported", "image"),
        whatsapp.Ignored("status:wamid.9:read", "status", "read"),
    ]
    with pytest.raises(whatsapp.PayloadInvalid):
        whatsapp.parse({"object": "page"})


@pytest.mark.parametrize("text,expected", [
    ("baru: arah kiblat salah", (True, "arah kiblat salah")),
    ("Pengaduan baru - guru tidak hadir", (True, "guru tidak hadir")),
    ("nomor saya 123", (False, "nomor saya 123")),
    ("barusan saya ke KUA", (False, "barusan saya ke KUA")),
])
def test_a_follow_up_asks_for_a_new_complaint_only_explicitly(text, expected):
    assert whatsapp.wants_new_complaint(text) == expected


def test_api_keys_map_to_their_channel_limit_and_unit():
    keys = ApiKeys("rumah_digital:abcdefghijklmnop1:10/5;website:abcdefghijklmnop2::mtsn-1")
    rd, site = keys.lookup("abcdefghijklmnop1"), keys.lookup("abcdefghijklmnop2")
    assert (rd.channel, rd.limit, rd.unit_code) == ("rumah_digital", Limit(10, 5.0), None)
    assert (site.channel, site.unit_code) == ("website", "mtsn-1")
    assert keys.lookup("abcdefghijklmnop3") is None
    with pytest.raises(ValueError):
        ApiKeys("mars:abcdefghijklmnop1")


def test_sealed_personal_data_opens_only_with_its_key():
    box = PersonalDataBox(new_key())
    sealed = box.seal({"name": "Siti", "phone": "+6281234567890"})
    assert "Siti" not in sealed
    assert box.open(sealed) == {"name": "Siti", "phone": "+6281234567890"}
    with pytest.raises(SealBroken):
        PersonalDataBox(new_key()).open(sealed)
    assert box.fingerprint({"phone": "+62812"}) == box.fingerprint({"phone": "+62812",
                                                                      "email": "x@y.id"})
    assert box.fingerprint({}) is None


def test_open311_status_is_closed_only_once_resolved_or_closed():
    assert [open311.open311_status(s) for s in ("received", "responded", "resolved",
                                                 "closed")] == ["open", "open", "closed",
                                                                "closed"]


def test_only_a_higher_seq_moves_the_status_and_actions_follow_it():
    assert seq_applies(0, 1) and seq_applies(2, 3)
    assert not seq_applies(3, 2) and not seq_applies(3, 3)
    assert can_rate("resolved", None) and not can_rate("resolved", 4)
    assert can_reopen("resolved", 5, None) and not can_reopen("resolved", 5, 5)
    assert can_reopen("resolved", 7, 5)


def test_the_poster_command_writes_a_png_and_a_pdf_per_unit_and_location(tmp_path, monkeypatch):
    from services.intake import posters

    monkeypatch.setenv("INTAKE_QR_SECRET", "s")
    assert posters.main(["--unit", "kua-merigi=KUA Merigi", "--location", "ptsp=Ruang PTSP",
                         "--location", "lobi=Lobi", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["poster-kua-merigi-lobi.pdf", "poster-kua-merigi-lobi.png",
                     "poster-kua-merigi-ptsp.pdf", "poster-kua-merigi-ptsp.png"]
    assert (tmp_path / "poster-kua-merigi-ptsp.pdf").read_bytes().startswith(b"%PDF")
