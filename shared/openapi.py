"""Pieces of the staff services' OpenAPI 3 documents (routing, reporting): the error body every
JSON answer uses (shared/web.py `error_response`), the signed session cookie and CSRF header of
shared/auth.py as security schemes, and the health, metrics and document operations every
service has. Each service builds its own document from these (services/<svc>/openapi.py);
schemathesis checks every operation against a running service
(tests/security/test_openapi_staff_schemathesis.py)."""

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from shared.auth import SESSION_COOKIE

# Security schemes (components.securitySchemes) and the requirements operations name.
SESSION = "SessionCookie"
CSRF = "CsrfToken"
SIGNED_IN = [{SESSION: []}]
SIGNED_IN_WRITE = [{SESSION: [], CSRF: []}]
PUBLIC = [{}]

RETRY_AFTER = {"Retry-After": {
    "description": "whole seconds to wait before trying again",
    "required": True, "schema": {"type": "integer", "minimum": 1}}}


class ErrorBody(Schema):
    code = fields.String(required=True, metadata={"description": "machine code"})
    message = fields.String(required=True, metadata={"description": "Indonesian message"})
    details = fields.Raw()


class Error(Schema):
    error = fields.Nested(ErrorBody, required=True)


class Health(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "unavailable"]})
    checks = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True)


def new_spec(title: str, version: str, description: str, base_url: str) -> APISpec:
    """An APISpec with the shared schemas and the session security schemes registered."""
    spec = APISpec(
        title=title, version=version, openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
        info={"description": description + " Messages in responses are in Bahasa Indonesia."},
        servers=[{"url": base_url}],
    )
    spec.components.security_scheme(SESSION, {
        "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
        "description": "Signed session cookie set by routing's `POST /api/v1/session` (or a "
                       "sign-in page); valid on every service of the deployment for 8 hours.",
    })
    spec.components.security_scheme(CSRF, {
        "type": "apiKey", "in": "header", "name": "X-CSRF-Token",
        "description": "Anti-CSRF token of the session (`csrf_token` in the sign-in answer); "
                       "required, next to the cookie, on every request that changes something.",
    })
    spec.components.schema("Error", schema=Error)
    spec.components.schema("Health", schema=Health)
    return spec


def errors(descriptions: dict[str, str], *codes: str) -> dict:
    """Responses for error status codes: the Error body, Retry-After on 429 and 503."""
    out = {}
    for code in codes:
        out[code] = {"description": descriptions[code],
                     "content": {"application/json": {"schema": "Error"}}}
        if code in ("429", "503"):
            out[code]["headers"] = RETRY_AFTER
    return out


def add_common_paths(spec: APISpec, document_path: str) -> None:
    """The document itself, readiness and Prometheus metrics."""
    spec.path(path=document_path, operations={"get": {
        "summary": "This document",
        "security": PUBLIC,
        "responses": {"200": {"description": "OpenAPI 3 document", "content": {
            "application/json": {"schema": {"type": "object"}}}}},
    }})
    spec.path(path="/health", operations={"get": {
        "summary": "Readiness: database and broker (internal, not behind the public proxy)",
        "security": PUBLIC,
        "responses": {
            "200": {"description": "ready",
                    "content": {"application/json": {"schema": "Health"}}},
            "503": {"description": "not ready",
                    "content": {"application/json": {"schema": "Health"}}},
        },
    }})
    spec.path(path="/metrics", operations={"get": {
        "summary": "Prometheus metrics (internal, not behind the public proxy)",
        "security": PUBLIC,
        "responses": {"200": {"description": "text exposition format", "content": {
            "text/plain": {"schema": {"type": "string"}}}}},
    }})
