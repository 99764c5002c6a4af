"""The OpenAPI 3 document of reporting's machine interfaces: the statistics API, health and
metrics. Served at /api/openapi/reporting.json; schemathesis checks every operation in it
against a running reporting (tests/security/test_openapi_staff_schemathesis.py). The pages and
the file exports (/statistik, /dasbor, /laporan/...) are not part of it."""

from marshmallow import Schema, fields

from shared.catalogue import CATEGORY_CODES, CHANNELS, CONFIDENTIALITY
from shared.openapi import SESSION, add_common_paths, errors, new_spec

DOCUMENT_PATH = "/api/openapi/reporting.json"

_DESCRIPTIONS = {
    "400": "invalid parameter; `error.code` says which (`invalid_date`, `invalid_period`, "
           "`period_too_long`, `invalid_unit`, `invalid_kecamatan`, `invalid_channel`, "
           "`invalid_category`, `invalid_confidentiality`, `invalid_trend`)",
    "403": "a per-unit filter without signing in (`sign_in_for_units`), a role with no "
           "reports (`forbidden`), another unit than one's own (`forbidden_unit`)",
    "503": "database unavailable for a moment (`service_unavailable`); see Retry-After",
}


class Period(Schema):
    from_ = fields.String(required=True, allow_none=True, data_key="from")
    to = fields.String(required=True, allow_none=True)


class Backlog(Schema):
    open = fields.Integer(required=True)
    median_age_working_days = fields.Float(required=True, allow_none=True)
    p90_age_working_days = fields.Float(required=True, allow_none=True)
    oldest_age_working_days = fields.Integer(required=True, allow_none=True)
    over_5_working_days = fields.Integer(required=True)


class Sla(Schema):
    met = fields.Integer(required=True)
    missed = fields.Integer(required=True)
    warned = fields.Integer(required=True)
    compliance = fields.Float(required=True, allow_none=True, metadata={
        "description": "met / (met + missed), null when nothing was decided"})


class UnitSla(Sla):
    complaints = fields.Integer(required=True)


class Satisfaction(Schema):
    rated = fields.Integer(required=True)
    average = fields.Float(required=True, allow_none=True)
    by_rating = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class TrendBucket(Schema):
    received = fields.Integer(required=True)
    open = fields.Integer(required=True)
    done = fields.Integer(required=True)


class Trend(Schema):
    period = fields.String(required=True, metadata={"enum": ["week", "month"]})
    buckets = fields.Dict(keys=fields.String(), values=fields.Nested(TrendBucket),
                          required=True)


class WorkingDays(Schema):
    count = fields.Integer(required=True)
    median = fields.Float(required=True, allow_none=True)
    p90 = fields.Float(required=True, allow_none=True)


class Notifications(Schema):
    sent = fields.Integer(required=True)
    failed = fields.Integer(required=True)


class PublicStats(Schema):
    period = fields.Nested(Period, required=True)
    filters = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    total = fields.Integer(required=True)
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    by_kecamatan = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    by_channel = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    by_category = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    by_confidentiality = fields.Dict(keys=fields.String(), values=fields.Integer(),
                                     required=True)
    backlog = fields.Nested(Backlog, required=True)
    working_days = fields.Dict(keys=fields.String(), values=fields.Nested(WorkingDays),
                               required=True)
    sla = fields.Nested(Sla, required=True)
    satisfaction = fields.Nested(Satisfaction, required=True)
    trend = fields.Nested(Trend, required=True)


class Stats(PublicStats):
    by_unit = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    sla_by_unit = fields.Dict(keys=fields.String(), values=fields.Nested(UnitSla),
                              required=True)
    returned = fields.Integer(required=True)
    rerouted = fields.Integer(required=True)
    reopened = fields.Integer(required=True)
    notifications = fields.Nested(Notifications, required=True)


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def build_spec(base_url: str) -> dict:
    spec = new_spec(
        "Dumas reporting API", "1.0.0",
        "Complaint statistics of the complaints service (Kemenag Kabupaten Kepahiang). "
        "Anonymous callers get the public view of the whole office; signed-in desk admins, "
        "auditors and unit heads (their unit only) get everything in their scope.",
        base_url,
    )
    for schema in (PublicStats, Stats):
        spec.components.schema(schema.__name__, schema=schema)
    date = {"type": "string", "format": "date"}
    spec.path(path="/api/v1/stats", operations={"get": {
        "summary": "Aggregates for a period and filters",
        "security": [{}, {SESSION: []}],
        "parameters": [
            _query("from", date, "first day (default: since the beginning); 2000-01-01 to "
                   "2099-12-31"),
            _query("to", date, "last day (at most five years after `from`); 2000-01-01 to "
                   "2099-12-31"),
            _query("unit", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
                   "one unit (staff only)"),
            _query("kecamatan", {"type": "string", "pattern": r"^\d{2}\.\d{2}\.\d{2}$"},
                   "one kecamatan, e.g. 17.08.05"),
            _query("channel", {"type": "string", "enum": sorted(CHANNELS)}, "one channel"),
            _query("category", {"type": "string", "enum": sorted(CATEGORY_CODES)},
                   "one category"),
            _query("confidentiality", {"type": "string", "enum": sorted(CONFIDENTIALITY)},
                   "one confidentiality level"),
            _query("trend", {"type": "string", "enum": ["week", "month"]},
                   "trend buckets (default month)"),
        ],
        "responses": {
            "200": {"description": "the statistics: the public view (no per-unit figures) "
                                   "without a session, `Stats` for staff",
                    "content": {"application/json": {"schema": {"anyOf": [
                        {"$ref": "#/components/schemas/Stats"},
                        {"$ref": "#/components/schemas/PublicStats"}]}}}},
            **errors(_DESCRIPTIONS, "400", "403", "503"),
        },
    }})
    add_common_paths(spec, DOCUMENT_PATH)
    return spec.to_dict()
