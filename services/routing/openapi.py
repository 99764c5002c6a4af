"""The OpenAPI 3 document of routing's machine interfaces: the unit inbox JSON API (sign-in,
list, CSV export, detail, actions), the audit trail, rollout stages, the unit registry, health
and metrics. Served at /api/openapi/routing.json; schemathesis checks every operation in it
against a running routing (tests/security/test_openapi_staff_schemathesis.py). The inbox pages
(/inbox...) are not part of it."""

from marshmallow import Schema, fields

from services.routing.domain import lifecycle
from services.routing.domain.registry import STAGES
from shared.openapi import (
    PUBLIC,
    SIGNED_IN,
    SIGNED_IN_WRITE,
    add_common_paths,
    errors,
    new_spec,
)

DOCUMENT_PATH = "/api/openapi/routing.json"
STATUSES = sorted((*lifecycle.ACTIVE, "closed"))

_DESCRIPTIONS = {
    "400": "invalid input; `error.code` says which (`invalid_json`, `invalid_body`, "
           "`invalid_status`, `unknown_action`, `invalid_characters` for text holding a NUL "
           "character)",
    "401": "not signed in (`unauthenticated`) or wrong user name or password "
           "(`invalid_credentials`)",
    "403": "the role may not do this (`forbidden`), or a write without the session's "
           "X-CSRF-Token (`csrf_failed`)",
    "404": "unknown complaint or one outside the person's unit (`not_found`), unknown unit "
           "(`unknown_unit`)",
    "409": "not allowed in the complaint's current status, or changed by someone else "
           "meanwhile (`conflict`)",
    "413": "body over 64 KiB (`payload_too_large`)",
    "415": "not JSON (`unsupported_media_type`)",
    "422": "well-formed but unacceptable (text missing or too long, unknown target unit, "
           "unknown stage)",
    "429": "too many failed sign-ins (`too_many_attempts`); see Retry-After",
    "503": "database unavailable for a moment (`service_unavailable`); see Retry-After",
}
_ERR = _DESCRIPTIONS  # short alias for the calls below
_TIMESTAMP = {"description": "UTC timestamp, `YYYY-MM-DD HH:MM:SS[.ffffff]+00:00`"}
_ID = {"type": "string", "maxLength": 64}


class Credentials(Schema):
    username = fields.String(required=True, metadata={"maxLength": 64})
    password = fields.String(required=True, metadata={"maxLength": 256})


class SessionStarted(Schema):
    username = fields.String(required=True)
    role = fields.String(required=True)
    unit_code = fields.String(required=True, allow_none=True)
    csrf_token = fields.String(required=True, metadata={
        "description": "send it as X-CSRF-Token on every write"})


class ComplaintSummary(Schema):
    complaint_id = fields.String(required=True)
    tracking_code = fields.String(required=True)
    unit_code = fields.String(required=True, allow_none=True)
    unit_name = fields.String(required=True, allow_none=True)
    read_only = fields.Boolean(required=True)
    category = fields.String(required=True)
    channel = fields.String(required=True)
    confidentiality = fields.String(required=True)
    confidential = fields.Boolean(required=True)
    status = fields.String(required=True, metadata={"enum": STATUSES})
    status_name = fields.String(required=True)
    description = fields.String(required=True)
    received_at = fields.String(required=True, allow_none=True, metadata=_TIMESTAMP)
    routed_at = fields.String(required=True, allow_none=True, metadata=_TIMESTAMP)
    response_due_at = fields.String(required=True, allow_none=True, metadata=_TIMESTAMP)
    resolution_due_at = fields.String(required=True, allow_none=True, metadata=_TIMESTAMP)
    clock_paused = fields.Boolean(required=True)
    sla_breached = fields.Boolean(required=True)
    rule = fields.String(required=True, allow_none=True)


class TimelineEntry(Schema):
    at = fields.String(required=True, metadata=_TIMESTAMP)
    actor = fields.String(required=True)
    actor_role = fields.String(required=True)
    action = fields.String(required=True)
    text = fields.String(required=True, allow_none=True)


class Attachment(Schema):
    name = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "bytes"})
    media_type = fields.String(required=True)
    kind = fields.String(required=True, metadata={
        "description": "image, audio, video or document"})
    url = fields.String(required=True, metadata={
        "description": "path of the file on routing, signed for this session (the session "
                       "cookie is needed too); 404 for anyone who may not see the complaint"})
    thumb_url = fields.String(required=True, allow_none=True, metadata={
        "description": "a small JPEG of an image (null for other kinds)"})


class ComplaintDetail(ComplaintSummary):
    reason = fields.String(required=True, allow_none=True)
    public_response = fields.String(required=True, allow_none=True)
    resolution = fields.String(required=True, allow_none=True)
    close_reason = fields.String(required=True, allow_none=True)
    rating = fields.Integer(required=True, allow_none=True)
    seq = fields.Integer(required=True)
    actions = fields.List(fields.String(), required=True, metadata={
        "description": "what this person may do now"})
    timeline = fields.List(fields.Nested(TimelineEntry), required=True)
    attachments = fields.List(fields.Nested(Attachment), required=True, metadata={
        "description": "the evidence files, oldest first"})


class Inbox(Schema):
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    items = fields.List(fields.Nested(ComplaintSummary), required=True)


class Action(Schema):
    action = fields.String(required=True, metadata={"enum": sorted(lifecycle.ACTIONS)})
    text = fields.String(allow_none=True, metadata={
        "description": "question, answer, resolution, note or reason, as the action needs"})
    target_unit = fields.String(allow_none=True, metadata={"description": "for `reroute`"})


class ActionDone(Schema):
    complaint_id = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": STATUSES})
    unit_code = fields.String(required=True, allow_none=True)
    seq = fields.Integer(required=True)


class AuditEntry(Schema):
    id = fields.Integer(required=True)
    complaint_id = fields.String(required=True, allow_none=True)
    unit_code = fields.String(required=True, allow_none=True)
    actor = fields.String(required=True)
    actor_role = fields.String(required=True)
    action = fields.String(required=True)
    before = fields.Raw(required=True, allow_none=True)
    after = fields.Raw(required=True, allow_none=True)
    text = fields.String(required=True, allow_none=True)
    at = fields.String(required=True, metadata=_TIMESTAMP)


class AuditTrail(Schema):
    entries = fields.List(fields.Nested(AuditEntry), required=True)


class StageRequest(Schema):
    stage = fields.String(required=True, metadata={"enum": list(STAGES)})
    reason = fields.String(allow_none=True)


class StageChange(Schema):
    unit_code = fields.String(required=True)
    old_stage = fields.String(required=True, metadata={"enum": list(STAGES)})
    new_stage = fields.String(required=True, metadata={"enum": list(STAGES)})
    changed = fields.Boolean(required=True)


class Unit(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    type = fields.String(required=True)
    stage = fields.String(required=True, metadata={"enum": list(STAGES)})
    kecamatan_code = fields.String(required=True, allow_none=True)


class Units(Schema):
    units = fields.List(fields.Nested(Unit), required=True)


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_STATUS = _query("status", {"type": "string", "enum": STATUSES},
                 "only complaints in this status (default: every open one)")
_UNIT = _query("unit", _ID, "only this unit's complaints (desk and auditors)")


def build_spec(base_url: str) -> dict:
    spec = new_spec(
        "Dumas routing API", "1.0.0",
        "The unit inbox of the complaints service (Kemenag Kabupaten Kepahiang): sign in, list "
        "and act on complaints, audit trail, rollout stages. Sign in with `POST "
        "/api/v1/session`: the answer sets the session cookie and carries the CSRF token every "
        "write sends as X-CSRF-Token. PTSP officers have no inbox (403).",
        base_url,
    )
    for schema in (Credentials, SessionStarted, ComplaintSummary, ComplaintDetail, Inbox,
                   Action, ActionDone, AuditTrail, StageRequest, StageChange, Units):
        spec.components.schema(schema.__name__, schema=schema)

    def body(name):
        return {"required": True, "content": {"application/json": {"schema": name}}}

    spec.path(path="/api/v1/session", operations={"post": {
        "summary": "Sign in",
        "description": "Failed attempts are throttled per user name and per address (429).",
        "security": PUBLIC,
        "requestBody": body("Credentials"),
        "responses": {
            "200": {"description": "signed in; sets the `dumas_session` cookie",
                    "headers": {"Set-Cookie": {"required": True,
                                               "schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": "SessionStarted"}}},
            **errors(_ERR, "400", "401", "413", "415", "429", "503"),
        },
    }})
    spec.path(path="/api/v1/inbox", operations={"get": {
        "summary": "The complaints this person may see, oldest deadline first, 50 a page",
        "security": SIGNED_IN,
        "parameters": [_STATUS, _UNIT,
                       _query("page", {"type": "integer", "minimum": 1, "maximum": 100000},
                              "page number, from 1 (outside 1..100000: the nearest bound)")],
        "responses": {
            "200": {"description": "one page",
                    "content": {"application/json": {"schema": "Inbox"}}},
            **errors(_ERR, "400", "401", "403", "503"),
        },
    }})
    spec.path(path="/api/v1/inbox/export.csv", operations={"get": {
        "summary": "The same list, every page, as a CSV file",
        "security": SIGNED_IN,
        "parameters": [_STATUS, _UNIT],
        "responses": {
            "200": {"description": "CSV (UTF-8); the columns depend on the role",
                    "content": {"text/csv": {"schema": {"type": "string"}}}},
            **errors(_ERR, "400", "401", "403", "503"),
        },
    }})
    complaint_id = {"name": "complaint_id", "in": "path", "required": True, "schema": _ID}
    spec.path(path="/api/v1/inbox/complaints/{complaint_id}", operations={"get": {
        "summary": "One complaint with its timeline and the actions open to this person",
        "security": SIGNED_IN,
        "parameters": [complaint_id],
        "responses": {
            "200": {"description": "the complaint",
                    "content": {"application/json": {"schema": "ComplaintDetail"}}},
            **errors(_ERR, "401", "403", "404", "503"),
        },
    }})
    spec.path(path="/api/v1/inbox/complaints/{complaint_id}/actions", operations={"post": {
        "summary": "Act on a complaint (acknowledge, start, request_info, respond, ...)",
        "security": SIGNED_IN_WRITE,
        "parameters": [complaint_id],
        "requestBody": body("Action"),
        "responses": {
            "200": {"description": "done", "content": {"application/json": {
                "schema": "ActionDone"}}},
            **errors(_ERR, "400", "401", "403", "404", "409", "413", "415", "422", "503"),
        },
    }})
    spec.path(path="/api/v1/audit", operations={"get": {
        "summary": "The audit trail, newest first (desk admins and auditors)",
        "security": SIGNED_IN,
        "parameters": [
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000},
                   "entries per answer (default 200; outside 1..1000: the nearest bound)"),
            _query("before", {"type": "integer", "minimum": 1},
                   "only entries with a smaller id (the next page)"),
        ],
        "responses": {
            "200": {"description": "entries",
                    "content": {"application/json": {"schema": "AuditTrail"}}},
            **errors(_ERR, "400", "401", "403", "503"),
        },
    }})
    spec.path(path="/api/v1/units/{unit_code}/stage", operations={"post": {
        "summary": "Change a unit's rollout stage (desk admins)",
        "security": SIGNED_IN_WRITE,
        "parameters": [{"name": "unit_code", "in": "path", "required": True, "schema": _ID}],
        "requestBody": body("StageRequest"),
        "responses": {
            "200": {"description": "the change (or `changed: false` if already there)",
                    "content": {"application/json": {"schema": "StageChange"}}},
            **errors(_ERR, "400", "401", "403", "404", "413", "415", "422", "503"),
        },
    }})
    spec.path(path="/api/v1/units", operations={"get": {
        "summary": "The unit registry (public)",
        "security": PUBLIC,
        "responses": {"200": {"description": "units, the desk first",
                              "content": {"application/json": {"schema": "Units"}}}},
    }})
    add_common_paths(spec, DOCUMENT_PATH)
    return spec.to_dict()
