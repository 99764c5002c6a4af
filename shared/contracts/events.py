"""Event payload schemas (the `data` of an envelope), named for what happened.

Personal data (names, phone numbers, e-mail addresses) never appears here: `contact_channels`
says which kinds of contact exist, and notification asks intake for the contact at send time.
"""

from marshmallow import Schema, fields, validate

from shared.catalogue import CATEGORY_CODES, CHANNELS, CONFIDENTIALITY, CONTACT_KINDS

_uuid = fields.UUID
_code = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_kecamatan = validate.Regexp(r"^\d{2}\.\d{2}\.\d{2}$")
_desa = validate.Regexp(r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")


class ComplaintReceivedV1(Schema):
    """intake -> everyone: a validated complaint was stored."""

    complaint_id = _uuid(required=True)
    tracking_code = fields.String(required=True, validate=validate.Length(4, 32))
    channel = fields.String(required=True, validate=validate.OneOf(tuple(CHANNELS)))
    category = fields.String(required=True, validate=validate.OneOf(CATEGORY_CODES))
    description = fields.String(required=True, validate=validate.Length(1, 4000))
    kecamatan_code = fields.String(load_default=None, allow_none=True, validate=_kecamatan)
    desa_code = fields.String(load_default=None, allow_none=True, validate=_desa)
    unit_hint = fields.String(load_default=None, allow_none=True, validate=_code)
    unit_hint_trusted = fields.Boolean(load_default=False)
    confidentiality = fields.String(
        required=True, validate=validate.OneOf(tuple(CONFIDENTIALITY))
    )
    contact_channels = fields.List(
        fields.String(validate=validate.OneOf(CONTACT_KINDS)), load_default=list
    )
    received_at = fields.AwareDateTime(required=True)


class ComplaintRoutedV1(Schema):
    """routing -> everyone: a complaint was assigned to a unit (or the desk)."""

    complaint_id = _uuid(required=True)
    tracking_code = fields.String(required=True, validate=validate.Length(4, 32))
    unit_code = fields.String(required=True, validate=_code)
    unit_name = fields.String(required=True, validate=validate.Length(1, 200))
    unit_type = fields.String(
        required=True, validate=validate.OneOf(("desk", "kua", "madrasah"))
    )
    stage = fields.String(
        required=True, validate=validate.OneOf(("off", "shadow", "pilot", "live"))
    )
    rule = fields.String(required=True, validate=validate.Length(1, 64))
    reason = fields.String(required=True, validate=validate.Length(1, 500))
    category = fields.String(required=True, validate=validate.OneOf(CATEGORY_CODES))
    channel = fields.String(required=True, validate=validate.OneOf(tuple(CHANNELS)))
    confidentiality = fields.String(
        required=True, validate=validate.OneOf(tuple(CONFIDENTIALITY))
    )
    contact_channels = fields.List(
        fields.String(validate=validate.OneOf(CONTACT_KINDS)), load_default=list
    )
    kecamatan_code = fields.String(load_default=None, allow_none=True, validate=_kecamatan)
    # Short excerpt for the unit's notification; empty for confidential complaints.
    summary = fields.String(load_default="", validate=validate.Length(0, 280))
    routed_at = fields.AwareDateTime(required=True)
    due_at = fields.AwareDateTime(required=True)


class NotificationSentV1(Schema):
    """notification -> reporting: one message was handed to a provider."""

    complaint_id = _uuid(required=True)
    delivery_id = fields.String(required=True, validate=validate.Length(1, 64))
    cause_event_id = _uuid(required=True)
    audience = fields.String(required=True, validate=validate.OneOf(("unit", "complainant")))
    channel = fields.String(required=True, validate=validate.Length(1, 32))
    provider = fields.String(required=True, validate=validate.Length(1, 32))
    template = fields.String(required=True, validate=validate.Length(1, 64))
    sent_at = fields.AwareDateTime(required=True)


class NotificationFailedV1(Schema):
    """notification -> reporting/operators: a message could not be delivered."""

    complaint_id = _uuid(required=True)
    delivery_id = fields.String(required=True, validate=validate.Length(1, 64))
    cause_event_id = _uuid(required=True)
    audience = fields.String(required=True, validate=validate.OneOf(("unit", "complainant")))
    channel = fields.String(required=True, validate=validate.Length(1, 32))
    provider = fields.String(required=True, validate=validate.Length(1, 32))
    template = fields.String(required=True, validate=validate.Length(1, 64))
    reason = fields.String(required=True, validate=validate.Length(1, 500))
    failed_at = fields.AwareDateTime(required=True)


# (event_type, version) -> schema. Add a new version here with an upcaster in envelope.py.
SCHEMAS: dict[tuple[str, int], type[Schema]] = {
    ("complaint_received", 1): ComplaintReceivedV1,
    ("complaint_routed", 1): ComplaintRoutedV1,
    ("notification_sent", 1): NotificationSentV1,
    ("notification_failed", 1): NotificationFailedV1,
}

# Which service publishes each event type; the exchange is "<producer>.events".
PRODUCERS: dict[str, str] = {
    "complaint_received": "intake",
    "complaint_routed": "routing",
    "notification_sent": "notification",
    "notification_failed": "notification",
}
