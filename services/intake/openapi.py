"""The OpenAPI 3 document of intake's JSON API, generated from the marshmallow schemas that
validate the requests (so the document cannot drift from what the server accepts)."""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from services.intake.domain.validation import ComplaintSubmissionSchema


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
    unit_code = fields.String(allow_none=True)
    unit_name = fields.String(allow_none=True)
    expected_at = fields.DateTime(allow_none=True)
    history = fields.List(fields.Nested(HistoryEntry), required=True)


def _errors(*codes):
    descriptions = {
        "400": "invalid JSON (`invalid_json`) or invalid submission (`invalid_submission`)",
        "401": "unknown API key (`invalid_api_key`)",
        "404": "unknown tracking code",
        "409": "Idempotency-Key reused with a different body (`idempotency_conflict`)",
        "413": "body over 64 KiB (`payload_too_large`)",
        "415": "not JSON",
        "429": "rate limit; see the Retry-After header (`rate_limited`)",
    }
    return {c: {"description": descriptions[c], "content": {
        "application/json": {"schema": "Error"}}} for c in codes}


def build_spec(base_url: str) -> dict:
    spec = APISpec(
        title="Dumas intake API",
        version="1.0.0",
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
                         ("ComplaintStatus", ComplaintStatus), ("Error", Error)):
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
                "schema": {"type": "string", "maxLength": 200},
                "description": "Same key and body: the same answer, no second complaint; "
                               "same key with another body: 409.",
            }],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": "ComplaintSubmission"}}},
            "responses": {
                "201": {"description": "stored", "content": {
                    "application/json": {"schema": "ComplaintAccepted"}}},
                "200": {"description": "duplicate of an earlier complaint (its tracking code)",
                        "content": {"application/json": {"schema": "ComplaintAccepted"}}},
                **_errors("400", "401", "409", "413", "415", "429"),
            },
        }},
    )
    spec.path(
        path="/api/v1/complaints/{code}",
        operations={"get": {
            "summary": "Public status of a complaint",
            "parameters": [{"name": "code", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "status", "content": {
                "application/json": {"schema": "ComplaintStatus"}}}, **_errors("404")},
        }},
    )
    return spec.to_dict()
