"""The OpenAPI 3 document of intake's machine interfaces (JSON API, Open311, WhatsApp webhook,
health and metrics), generated from the marshmallow schemas that validate the requests (so the
document cannot drift from what the server accepts). schemathesis checks every operation in it
against a running intake (tests/security/test_openapi_schemathesis.py). The HTML pages (form,
tracking, PTSP desk, /api/docs) are not part of it."""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from services.intake.domain.validation import ComplaintSubmissionSchema
from shared.openapi import RETRY_AFTER, Health, add_common_paths, errors


class ErrorDetail(Schema):
    field = fields.String(allow_none=True)
    code = fields.String(required=True)
    message = fields.String(required=True)


class ErrorBody(Schema):
    code = fields.String(required=True, metadata={"description": "machine code"})
    message = fields.String(required=True, metadata={"description": "Indonesian message"})
    details = fields.List(fields.Nested(ErrorDetail))


class Error(Schema):
    error = fields.Nested(ErrorBody, required=True)


class ComplaintAccepted(Schema):
    tracking_code = fields.String(required=True, metadata={"example": "DMS-7KQ4-MX9T-2BH3"})
    status = fields.String(required=True)
    received_at = fields.DateTime(required=True)
    tracking_url = fields.String(required=True)
    message = fields.String(required=True)
    duplicate = fields.Boolean(
        metadata={"description": "true: linked to an earlier complaint of the same contact"}
    )
    notice = fields.String()


class HistoryEntry(Schema):
    status = fields.String(required=True)
    status_label = fields.String(required=True)
    at = fields.DateTime(required=True)


class ComplaintStatus(Schema):
    tracking_code = fields.String(required=True)
    status = fields.String(required=True)
    status_label = fields.String(required=True)
    category = fields.String(required=True)
    category_name = fields.String(required=True)
    unit_code = fields.String(required=True, allow_none=True)
    unit_name = fields.String(required=True, allow_none=True)
    expected_at = fields.DateTime(required=True, allow_none=True)
    history = fields.List(fields.Nested(HistoryEntry), required=True)


class Category(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)


class Categories(Schema):
    categories = fields.List(fields.Nested(Category), required=True)


class WebhookAnswer(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok"]})
    outcomes = fields.List(fields.String(), required=True, metadata={
        "description": "one per message/status of the delivery: complaint, duplicate, "
                       "info_added, duplicate_delivery, status, unsupported, invalid"})


class Open311Service(Schema):
    service_code = fields.String(required=True)
    service_name = fields.String(required=True)
    description = fields.String(required=True)
    metadata = fields.Boolean(required=True)
    type = fields.String(required=True)
    keywords = fields.String(required=True)
    group = fields.String(required=True)


class Open311Request(Schema):
    service_request_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": ["open", "closed"]})
    status_notes = fields.String(required=True)
    service_name = fields.String(required=True)
    service_code = fields.String(required=True)
    agency_responsible = fields.String(required=True, allow_none=True)
    service_notice = fields.String(required=True, allow_none=True)
    requested_datetime = fields.String(required=True, allow_none=True)
    updated_datetime = fields.String(required=True, allow_none=True)
    expected_datetime = fields.String(required=True, allow_none=True)
    address = fields.String(required=True, allow_none=True)
    address_id = fields.String(required=True, allow_none=True)
    zipcode = fields.String(required=True, allow_none=True)
    lat = fields.Float(required=True, allow_none=True)
    long = fields.Float(required=True, allow_none=True)
    media_url = fields.String(required=True, allow_none=True)


class Open311Created(Schema):
    service_request_id = fields.String(required=True)
    service_notice = fields.String(required=True)
    account_id = fields.String(required=True, allow_none=True)


class Open311Error(Schema):
    code = fields.Integer(required=True)
    description = fields.String(required=True)


_DESCRIPTIONS = {
    "400": "invalid input; `error.code` says which (`invalid_json`, `invalid_submission`, "
           "`invalid_idempotency_key`, `invalid_payload`)",
    "401": "unknown API key (`invalid_api_key`) or webhook signature (`invalid_signature`)",
    "403": "verification token mismatch (`verification_failed`)",
    "404": "unknown tracking code (`not_found`)",
    "409": "Idempotency-Key reused with a different body (`idempotency_conflict`)",
    "413": "body over 64 KiB (`payload_too_large`)",
    "415": "not JSON (`unsupported_media_type`)",
    "429": "rate limit; see the Retry-After header (`rate_limited`)",
    "503": "database unavailable for a moment (`service_unavailable`); see Retry-After",
}
_NO_CODE = {"type": "string", "maxLength": 64}


def _errors(*codes):
    return errors(_DESCRIPTIONS, *codes)


_OPEN311_ERRORS = {"type": "array", "items": {"$ref": "#/components/schemas/Open311Error"}}


def build_spec(base_url: str) -> dict:
    spec = APISpec(
        title="Dumas intake API",
        version="1.1.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Submit and track public complaints (Kemenag Kabupaten "
                             "Kepahiang). Messages in responses are in Bahasa Indonesia."},
        servers=[{"url": base_url}],
    )
    spec.components.security_scheme(
        "ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    )
    for name, schema in (("ComplaintSubmission", ComplaintSubmissionSchema),
                         ("ComplaintAccepted", ComplaintAccepted),
                         ("ComplaintStatus", ComplaintStatus), ("Error", Error),
                         ("Categories", Categories), ("Health", Health),
                         ("WebhookAnswer", WebhookAnswer), ("Open311Service", Open311Service),
                         ("Open311Request", Open311Request), ("Open311Created", Open311Created),
                         ("Open311Error", Open311Error)):
        spec.components.schema(name, schema=schema)
    spec.path(
        path="/api/v1/complaints",
        operations={"post": {
            "summary": "Submit a complaint",
            "description": "Without X-API-Key the request counts as the public `web` channel, "
                           "rate-limited per IP. A partner key attributes the complaint to its "
                           "channel with its own limit.",
            "security": [{}, {"ApiKey": []}],
            "parameters": [{
                "name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": "Same key and body: the same answer, no second complaint; "
                               "same key with another body: 409.",
            }],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": "ComplaintSubmission"}}},
            "responses": {
                "201": {"description": "stored", "content": {
                    "application/json": {"schema": "ComplaintAccepted"}}},
                "200": {"description": "duplicate of an earlier complaint (its tracking code), "
                                       "or an idempotent replay",
                        "content": {"application/json": {"schema": "ComplaintAccepted"}}},
                **_errors("400", "401", "409", "413", "415", "429", "503"),
            },
        }},
    )
    spec.path(
        path="/api/v1/complaints/{code}",
        operations={"get": {
            "summary": "Public status of a complaint",
            "description": "Lookups are rate-limited per client address (unknown codes "
                           "more strictly than known ones).",
            "parameters": [{"name": "code", "in": "path", "required": True,
                            "schema": _NO_CODE, "example": "DMS-7KQ4-MX9T-2BH3"}],
            "responses": {"200": {"description": "status", "content": {
                "application/json": {"schema": "ComplaintStatus"}}},
                **_errors("404", "429", "503")},
        }},
    )
    spec.path(
        path="/api/v1/categories",
        operations={"get": {
            "summary": "Complaint categories",
            "responses": {"200": {"description": "the categories a submission may name",
                                  "content": {"application/json": {"schema": "Categories"}}}},
        }},
    )
    spec.path(
        path="/open311/v2/services.json",
        operations={"get": {
            "summary": "Open311 GeoReport v2: service list (our categories)",
            "responses": {"200": {"description": "services", "content": {"application/json": {
                "schema": {"type": "array", "items": "Open311Service"}}}}},
        }},
    )
    open311_form = {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: {"type": "string"} for name in (
            "service_code", "description", "first_name", "last_name", "phone", "email",
            "attribute[kecamatan_code]", "attribute[desa_code]",
            "attribute[confidentiality]", "api_key", "jurisdiction_id", "lat", "long",
            "address_string", "address_id", "device_id", "account_id", "media_url")},
        "required": ["service_code", "description"],
    }
    open311_error = {"content": {"application/json": {"schema": _OPEN311_ERRORS}}}
    spec.path(
        path="/open311/v2/requests.json",
        operations={
            "post": {
                "summary": "Open311 GeoReport v2: submit a service request (a complaint)",
                "requestBody": {"required": True, "content": {
                    "application/x-www-form-urlencoded": {"schema": open311_form}}},
                "responses": {
                    "201": {"description": "stored", "content": {"application/json": {
                        "schema": {"type": "array", "items": "Open311Created"}}}},
                    "200": {"description": "linked to an earlier complaint",
                            "content": {"application/json": {
                                "schema": {"type": "array", "items": "Open311Created"}}}},
                    "400": {"description": "invalid or unknown fields", **open311_error},
                    "413": {"description": "body over 64 KiB", **open311_error},
                    "429": {"description": "rate limit", "headers": RETRY_AFTER,
                            **open311_error},
                    **_errors("503"),
                },
            },
            "get": {
                "summary": "Open311 GeoReport v2: service requests",
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in ("service_request_id", "service_code", "status", "start_date",
                              "end_date")
                ],
                "responses": {
                    "200": {"description": "requests (no complaint text is published)",
                            "content": {"application/json": {"schema": {
                                "type": "array", "items": "Open311Request"}}}},
                    "400": {"description": "dates not ISO 8601", **open311_error},
                    **_errors("429", "503"),
                },
            },
        },
    )
    spec.path(
        path="/open311/v2/requests/{request_id}.json",
        operations={"get": {
            "summary": "Open311 GeoReport v2: one service request",
            "parameters": [{"name": "request_id", "in": "path", "required": True,
                            "schema": _NO_CODE}],
            "responses": {
                "200": {"description": "the request", "content": {"application/json": {
                    "schema": {"type": "array", "items": "Open311Request"}}}},
                "404": {"description": "unknown", **open311_error},
                **_errors("429", "503"),
            },
        }},
    )
    spec.path(
        path="/webhooks/whatsapp",
        operations={
            "get": {
                "summary": "WhatsApp Cloud API webhook verification (Meta's handshake)",
                "parameters": [
                    {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                    for n in ("hub.mode", "hub.verify_token", "hub.challenge")
                ],
                "responses": {
                    "200": {"description": "the challenge, echoed", "content": {
                        "text/plain": {"schema": {"type": "string"}}}},
                    **_errors("403"),
                },
            },
            "post": {
                "summary": "WhatsApp Cloud API webhook (messages and statuses)",
                "description": "Signed with X-Hub-Signature-256 (HMAC-SHA256 of the raw body "
                               "with the app secret). A signed delivery in Meta's envelope is "
                               "answered 200 and every item in it is recorded with its outcome, "
                               "also those that make no complaint (see docs/security.md).",
                "parameters": [{"name": "X-Hub-Signature-256", "in": "header",
                                "required": False, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"type": "object"}}}},
                "responses": {
                    "200": {"description": "delivery acknowledged", "content": {
                        "application/json": {"schema": "WebhookAnswer"}}},
                    **_errors("400", "401", "413", "429", "503"),
                },
            },
        },
    )
    add_common_paths(spec, "/api/openapi.json")
    return spec.to_dict()
