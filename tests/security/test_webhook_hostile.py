"""Malformed and hostile deliveries to intake's WhatsApp webhook (real container, real PostgreSQL).

The rule (docs/security.md, "Webhook hardening"):
- not authentic (signature missing or wrong), too large, not JSON, not UTF-8, nested too deep,
  not an object, wrong content type: 4xx with a machine code and an Indonesian message, nothing
  stored;
- authentic and readable but not usable (another object type, another field or product, a part
  with missing or mistyped fields): 200 as Meta's protocol expects (anything else is retried for
  days and can get the webhook disabled) and every such part is recorded with its reason in the
  idempotency table (scope `whatsapp`, status 422 for malformed parts), never dropped silently;
- never a 5xx, and the service keeps serving.
"""

import contextlib
import hashlib
import hmac
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select
from support.intake_channels import APP_SECRET, intake_config, whatsapp_text

from services.intake.db import complaints, idempotency
from services.intake.service import IntakeService

WEBHOOK = "/webhooks/whatsapp"
SENDER = "6281234567890"


@pytest.fixture
def intake(start_service):
    # a generous per-sender limit: these tests are about payloads, not about 429
    service = start_service(IntakeService, **intake_config(), RATE_LIMIT_PHONE="100000/100000")
    service.http.headers["Connection"] = "close"  # idle keep-alives slow the container's stop
    return service


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def post(intake, raw: bytes, *, content_type="application/json", signature=None, **kw):
    headers = {"Content-Type": content_type}
    if signature is not False:
        headers["X-Hub-Signature-256"] = signature or sign(raw)
    return intake.post(WEBHOOK, data=raw, headers=headers, **kw)


def post_json(intake, payload):
    return post(intake, json.dumps(payload).encode())


def recorded(url) -> dict[str, tuple[int, dict]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(idempotency).where(idempotency.c.scope == "whatsapp")).all()
    engine.dispose()
    return {r.key: (r.status_code, json.loads(r.body)) for r in rows}


def complaint_count(url) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(select(func.count()).select_from(complaints)).scalar()
    engine.dispose()
    return found


def assert_refused(response, status, code, message_part):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert message_part in error["message"]


# -- not authentic: refused, nothing stored -------------------------------------------------------


FORGED_SIGNATURES = [
    None,                                      # header missing
    "sha256=",                                 # empty digest
    "sha1=0123456789abcdef",                   # another scheme
    "sha256=" + "0" * 64,                      # wrong digest
    sign(b"another body"),                     # a valid signature of something else
    sign(b"x", secret="not-the-app-secret"),   # made with another secret
]


def test_a_delivery_without_a_valid_signature_is_401_and_stores_nothing(intake, pg_urls):
    raw = json.dumps(whatsapp_text("wamid.FORGED", SENDER, "Pengaduan palsu penyerang")).encode()

    for signature in FORGED_SIGNATURES:
        response = post(intake, raw, signature=signature if signature is not None else False)
        assert_refused(response, 401, "invalid_signature", "Tanda tangan webhook tidak valid")

    assert recorded(pg_urls["intake"]) == {}
    assert complaint_count(pg_urls["intake"]) == 0


def test_a_body_over_meta_s_3_mb_is_413_before_anything_else(intake, pg_urls):
    raw = b'{"object": "whatsapp_business_account", "pad": "' + b"a" * (3 * 1024 * 1024) + b'"}'

    response = post(intake, raw)

    assert_refused(response, 413, "payload_too_large", "terlalu besar")
    assert recorded(pg_urls["intake"]) == {}


# -- authentic but unreadable: 4xx with a code, nothing stored ------------------------------------


UNREADABLE = {
    "invalid-utf8": (b"\xff\xfe\xfa not utf-8 \xc3\x28", "invalid_json"),
    "form-encoded": (b"object=whatsapp_business_account", "invalid_json"),
    "empty": (b"", "invalid_json"),
    "truncated": (b'{"object": "whatsapp_business_account", "entry": [', "invalid_json"),
    "deep-array": (b"[" * 200_000 + b"]" * 200_000, "invalid_json"),  # deeper than any parser
    "deep-object": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "invalid_json"),
    "array": (b"[1, 2, 3]", "invalid_payload"),
    "string": (b'"whatsapp_business_account"', "invalid_payload"),
    "null": (b"null", "invalid_payload"),
}


def test_an_authentic_but_unreadable_body_is_400_with_a_code(intake, pg_urls):
    for name, (raw, code) in UNREADABLE.items():
        response = post(intake, raw)

        message = {"invalid_json": "tidak dapat dibaca", "invalid_payload": "objek JSON"}[code]
        assert response.status_code == 400, (name, response.text)
        assert_refused(response, 400, code, message)

    assert recorded(pg_urls["intake"]) == {}
    assert intake.get("/health").status_code == 200


def test_a_signed_body_of_another_content_type_is_415(intake, pg_urls):
    raw = json.dumps(whatsapp_text("wamid.CT1", SENDER, "Ijazah MTs belum diberikan")).encode()

    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "text/html"):
        response = post(intake, raw, content_type=content_type)
        assert_refused(response, 415, "unsupported_media_type", "format JSON")

    assert complaint_count(pg_urls["intake"]) == 0


# -- authentic and readable, not usable: 200, each part recorded with its reason -----------------


def test_another_object_type_is_acknowledged_and_recorded(intake, pg_urls):
    response = post_json(intake, {"object": "instagram", "entry": [{"id": "1", "changes": []}]})

    assert response.status_code == 200
    assert response.json()["outcomes"] == ["unsupported"]
    [(status, body)] = recorded(pg_urls["intake"]).values()
    assert (status, body) == (200, {"outcome": "unsupported", "detail": "object:instagram"})


def test_every_malformed_or_unsupported_part_is_recorded_with_its_reason(intake, pg_urls):
    good = whatsapp_text("wamid.GOOD1", SENDER, "Bantuan BOS madrasah belum cair tiga bulan")
    value = good["entry"][0]["changes"][0]["value"]
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            "not an entry",                                         # changes_not_a_list
            {"id": "2", "changes": {"not": "a list"}},              # changes_not_a_list
            {"id": "3", "changes": [
                {"field": "messages"},                              # change_without_value
                {"field": "account_update", "value": {"x": 1}},     # unsupported field
                {"field": "messages", "value": {"messaging_product": "instagram"}},
                {"field": "messages", "value": {
                    **value,
                    "messages": [
                        value["messages"][0],                       # the one good message
                        {"from": SENDER, "type": "text", "text": {"body": "tanpa id"}},
                        {"from": SENDER, "id": 12345, "type": "text"},
                        {"from": SENDER, "id": "w" * 5000, "type": "text",
                         "text": {"body": "id terlalu panjang"}},
                        {"from": SENDER, "id": "wamid.NUL\u0000", "type": "text",
                         "text": {"body": "id dengan NUL"}},
                        {"from": SENDER, "id": "wamid.NOBODY", "type": "text", "text": {}},
                        {"from": 6281234567890, "id": "wamid.INTFROM", "type": "text",
                         "text": {"body": "pengirim berupa angka"}},
                        {"from": SENDER, "id": "wamid.IMG", "type": "image"},
                        ["a", "list"],
                    ],
                    "statuses": [{"status": "read"}, {"id": "wamid.S1", "status": "read"}],
                }},
            ]},
        ],
    }

    response = post_json(intake, payload)

    assert response.status_code == 200, response.text
    outcomes = response.json()["outcomes"]
    assert outcomes.count("complaint") == 1
    assert outcomes.count("malformed") == 11
    assert outcomes.count("unsupported") == 3  # account_update, instagram product, image
    assert outcomes.count("status") == 1
    rows = recorded(pg_urls["intake"])
    assert len(rows) == len(outcomes) == 16  # every part, none dropped
    reasons = sorted(body["detail"] for status, body in rows.values()
                     if body.get("outcome") == "malformed")
    assert reasons == sorted(
        ["changes_not_a_list"] * 2 + ["change_without_value"] + ["message_without_id"] * 5
        + ["text_without_body_or_sender"] * 2 + ["status_without_id"])
    assert {status for status, body in rows.values() if body.get("outcome") == "malformed"} == {
        422}
    assert complaint_count(pg_urls["intake"]) == 1

    # Meta retries the same body: recorded once, no second complaint
    again = post_json(intake, payload)
    assert again.status_code == 200
    assert len(recorded(pg_urls["intake"])) == 16
    assert complaint_count(pg_urls["intake"]) == 1


HOSTILE_TEXTS = [
    "Pengaduan\u0000 dengan karakter NUL di tengah teks",
    "Surat keterangan \ud800 dengan surrogate yang tidak berpasangan",
    "\u202eTeks terbalik\u202c dan emoji 🙏 serta <script>alert(1)</script>",
    "'; DROP TABLE complaints; -- pengaduan dengan injeksi SQL",
]


def test_hostile_text_in_an_authentic_message_never_breaks_the_webhook(intake, pg_urls):
    for n, text in enumerate(HOSTILE_TEXTS):
        sender = f"62812345678{n:02d}"  # one sender each: each text is a new complaint
        response = post_json(intake, whatsapp_text(f"wamid.TXT{n}", sender, text,
                                                   name="Siti\u0000"))

        assert response.status_code == 200, response.text
        assert response.json()["outcomes"] == ["complaint"]

    assert complaint_count(pg_urls["intake"]) == len(HOSTILE_TEXTS)


def test_the_webhook_keeps_working_after_the_hostile_ones(intake, pg_urls):
    for raw in (b"[" * 100_000, b"\xff" * 1000, b"{}" * 10):
        assert post(intake, raw).status_code == 400
    assert post(intake, b"{}", signature=False).status_code == 401

    response = post_json(intake, whatsapp_text("wamid.AFTER", SENDER, "Layanan haji lambat"))

    assert response.json()["outcomes"] == ["complaint"]
    assert intake.get("/health").status_code == 200


# -- property: any authentic JSON answers 200 or 4xx, never 5xx -----------------------------------

leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(
    max_size=40)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=20,
)


def _mutated(base: dict):
    """Meta's envelope with random parts replaced by random JSON: near-valid deliveries."""
    paths = [
        ("object",), ("entry",), ("entry", 0), ("entry", 0, "changes"),
        ("entry", 0, "changes", 0), ("entry", 0, "changes", 0, "field"),
        ("entry", 0, "changes", 0, "value"),
        ("entry", 0, "changes", 0, "value", "messaging_product"),
        ("entry", 0, "changes", 0, "value", "contacts"),
        ("entry", 0, "changes", 0, "value", "messages"),
        ("entry", 0, "changes", 0, "value", "messages", 0),
        ("entry", 0, "changes", 0, "value", "messages", 0, "id"),
        ("entry", 0, "changes", 0, "value", "messages", 0, "from"),
        ("entry", 0, "changes", 0, "value", "messages", 0, "type"),
        ("entry", 0, "changes", 0, "value", "messages", 0, "text"),
        ("entry", 0, "changes", 0, "value", "messages", 0, "text", "body"),
    ]

    def replace(doc, path, new):
        doc = json.loads(json.dumps(doc))
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = new
        return doc

    return st.lists(st.tuples(st.sampled_from(paths), json_values), max_size=3).map(
        lambda changes: _apply(base, changes, replace))


def _apply(base, changes, replace):
    doc = base
    for path, new in changes:
        # an earlier change may have removed the parent: keep what we have then
        with contextlib.suppress(KeyError, IndexError, TypeError):
            doc = replace(doc, path, new)
    return doc


@given(payload=st.one_of(json_values, _mutated(whatsapp_text("wamid.P", SENDER,
                                                             "Pengaduan uji properti"))),
       wamid=st.text(min_size=1, max_size=12))
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_authentic_json_is_answered_200_or_4xx_never_5xx(intake, payload, wamid):
    # a fresh message id per example, so examples do not collapse into duplicate deliveries
    text = json.dumps(payload).replace('"wamid.P"', json.dumps("wamid." + wamid))

    response = post(intake, text.encode())

    assert response.status_code in (200, 400), response.text
    body = response.json()
    if response.status_code == 200:
        assert body["status"] == "ok" and isinstance(body["outcomes"], list)
    else:
        assert body["error"]["code"] in ("invalid_json", "invalid_payload")
        assert body["error"]["message"]
