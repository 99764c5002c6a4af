"""Event payload schemas (the `data` of an envelope), named for what happened.

Personal data (names, phone numbers, e-mail addresses) never appears here: `contact_channels`
says which kinds of contact exist, and notification asks intake for the contact at send time.
"""

from marshmallow import Schema, fields, validate

from shared.catalogue import CATEGORY_CODES, CHANNELS, CONFIDENTIALITY, CONTACT_KINDS, STATUSES

_uuid = fields.UUID
_code = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_kecamatan = validate.Regexp(r"^\d{2}\.\d{2}\.\d{2}$")
_desa = validate.Regexp(r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
_stage = validate.OneOf(("off", "shadow", "pilot", "live"))
ATTACHMENT_MEDIA_TYPES = (
    "image/jpeg", "image/png", "image/webp", "application/pdf", "audio/ogg", "audio/mpeg",
    "audio/mp4", "audio/aac", "audio/amr", "video/mp4",
)


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


class AttachmentRef(Schema):
    """A reference to a stored evidence file (shared/storage.py): never the bytes."""

    sha256 = fields.String(required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    size = fields.Integer(required=True, strict=True, validate=validate.Range(1, 64 * 1024 * 1024))
    media_type = fields.String(required=True, validate=validate.OneOf(ATTACHMENT_MEDIA_TYPES))
    name = fields.String(required=True, validate=validate.Length(1, 120))


class ComplaintReceivedV2(ComplaintReceivedV1):
    """v2: plus the evidence attachments stored with the complaint (references only)."""

    attachments = fields.List(fields.Nested(AttachmentRef), load_default=list,
                              validate=validate.Length(0, 5))


class ComplaintAttachmentAddedV1(Schema):
    """intake -> routing: evidence arrived later for a complaint (a WhatsApp photo, voice note,
    document or video from the complainant's number); one event per file."""

    complaint_id = _uuid(required=True)
    tracking_code = fields.String(required=True, validate=validate.Length(4, 32))
    channel = fields.String(required=True, validate=validate.OneOf(tuple(CHANNELS)))
    attachment = fields.Nested(AttachmentRef, required=True)
    at = fields.AwareDateTime(required=True)


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
    # Lifecycle position: consumers keep the status of the highest `seq` seen per complaint, so
    # reordered or redelivered events never move a complaint backwards (see _UnitAction).
    status = fields.String(load_default="routed", validate=validate.OneOf(tuple(STATUSES)))
    seq = fields.Integer(load_default=1, strict=True, validate=validate.Range(1))


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


class _UnitAction(Schema):
    """Common fields of what a unit does with a complaint (routing -> everyone).

    routing owns the lifecycle: each transition it publishes carries the resulting `status` and
    a per-complaint sequence number `seq` (complaint_routed is seq 1); consumers apply an event
    only if its seq is higher than the last one they applied.
    """

    complaint_id = _uuid(required=True)
    tracking_code = fields.String(required=True, validate=validate.Length(4, 32))
    unit_code = fields.String(required=True, validate=_code)
    # The role that acted (unit_operator, unit_head, desk_admin, system); never a person's name.
    actor_role = fields.String(required=True, validate=validate.Length(1, 32))
    status = fields.String(required=True, validate=validate.OneOf(tuple(STATUSES)))
    seq = fields.Integer(required=True, strict=True, validate=validate.Range(1))
    at = fields.AwareDateTime(required=True)


class ComplaintAcknowledgedV1(_UnitAction):
    """The unit has seen the complaint and is handling it."""


class ComplaintWorkStartedV1(_UnitAction):
    """The complaint is being worked on (status in_progress): the unit started, the complainant
    answered a question, or the complainant reopened it."""

    cause = fields.String(
        load_default="started", validate=validate.OneOf(("started", "info_added", "reopened"))
    )


class ComplaintInfoRequestedV1(_UnitAction):
    """The unit asks the complainant for more information."""

    question = fields.String(required=True, validate=validate.Length(1, 2000))


class ComplaintRespondedV1(_UnitAction):
    """The unit answered; `response` is the public answer shown to the complainant."""

    response = fields.String(required=True, validate=validate.Length(1, 4000))


class ComplaintResolvedV1(_UnitAction):
    """The unit considers the complaint resolved."""

    resolution = fields.String(required=True, validate=validate.Length(1, 4000))


class ComplaintClosedV1(_UnitAction):
    """Closed for good (resolved and not reopened, withdrawn, duplicate, ...)."""

    reason = fields.String(required=True, validate=validate.Length(1, 500))


class ComplaintReturnedV1(_UnitAction):
    """The unit says the complaint is not theirs; routing re-routes it (a new complaint_routed)."""

    reason = fields.String(required=True, validate=validate.Length(1, 1000))


class SlaWarningV1(Schema):
    """A complaint's response is due soon (routing's SLA clock)."""

    complaint_id = _uuid(required=True)
    tracking_code = fields.String(required=True, validate=validate.Length(4, 32))
    unit_code = fields.String(required=True, validate=_code)
    due_at = fields.AwareDateTime(required=True)
    at = fields.AwareDateTime(required=True)


class SlaBreachedV1(SlaWarningV1):
    """A complaint's response is overdue; escalated to the unit head and the desk."""


class UnitStageChangedV1(Schema):
    """A unit's rollout stage changed (correlation id: the unit code)."""

    unit_code = fields.String(required=True, validate=_code)
    old_stage = fields.String(load_default=None, allow_none=True, validate=_stage)
    new_stage = fields.String(required=True, validate=_stage)
    changed_by = fields.String(required=True, validate=validate.Length(1, 64))
    reason = fields.String(load_default="", validate=validate.Length(0, 500))
    at = fields.AwareDateTime(required=True)


class ComplaintInfoAddedV1(Schema):
    """intake: the complainant added information (answer to a question, WhatsApp follow-up)."""

    complaint_id = _uuid(required=True)
    tracking_code = fields.String(required=True, validate=validate.Length(4, 32))
    channel = fields.String(required=True, validate=validate.OneOf(tuple(CHANNELS)))
    text = fields.String(required=True, validate=validate.Length(1, 4000))
    at = fields.AwareDateTime(required=True)


class ComplaintRatedV1(Schema):
    """intake: the complainant rated the handling (1..5)."""

    complaint_id = _uuid(required=True)
    tracking_code = fields.String(required=True, validate=validate.Length(4, 32))
    rating = fields.Integer(required=True, strict=True, validate=validate.Range(1, 5))
    comment = fields.String(load_default="", validate=validate.Length(0, 1000))
    at = fields.AwareDateTime(required=True)


class ComplaintReopenedV1(Schema):
    """intake: the complainant is not satisfied and reopens the complaint."""

    complaint_id = _uuid(required=True)
    tracking_code = fields.String(required=True, validate=validate.Length(4, 32))
    reason = fields.String(required=True, validate=validate.Length(1, 2000))
    at = fields.AwareDateTime(required=True)


class _SubmittedComplainant(Schema):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(0, 120))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(0, 32))
    email = fields.String(load_default=None, allow_none=True, validate=validate.Length(0, 254))


class ComplaintSubmittedV1(Schema):
    """A channel -> intake (exchange `channels.events`): a complaint to take in, the same fields
    as `POST /api/v1/complaints`. intake validates it fully (catalogues, phone, e-mail) and parks
    what it refuses. The one wire message with personal data: a command to intake only, which
    no other service consumes. `message_id` (the channel's own id) makes resubmission safe."""

    message_id = fields.String(required=True, validate=validate.Length(1, 200))
    channel = fields.String(required=True, validate=validate.OneOf(tuple(CHANNELS)))
    category = fields.String(required=True, validate=validate.OneOf(CATEGORY_CODES))
    description = fields.String(required=True, validate=validate.Length(10, 4000))
    kecamatan_code = fields.String(load_default=None, allow_none=True, validate=_kecamatan)
    desa_code = fields.String(load_default=None, allow_none=True, validate=_desa)
    unit_code = fields.String(load_default=None, allow_none=True, validate=_code)
    confidentiality = fields.String(
        load_default="public", validate=validate.OneOf(tuple(CONFIDENTIALITY))
    )
    complainant = fields.Nested(_SubmittedComplainant, load_default=None, allow_none=True)


# (event_type, version) -> schema. Add a new version here with an upcaster in envelope.py.
SCHEMAS: dict[tuple[str, int], type[Schema]] = {
    ("complaint_received", 1): ComplaintReceivedV1,
    ("complaint_received", 2): ComplaintReceivedV2,
    ("complaint_attachment_added", 1): ComplaintAttachmentAddedV1,
    ("complaint_routed", 1): ComplaintRoutedV1,
    ("notification_sent", 1): NotificationSentV1,
    ("notification_failed", 1): NotificationFailedV1,
    ("complaint_acknowledged", 1): ComplaintAcknowledgedV1,
    ("complaint_work_started", 1): ComplaintWorkStartedV1,
    ("complaint_info_requested", 1): ComplaintInfoRequestedV1,
    ("complaint_responded", 1): ComplaintRespondedV1,
    ("complaint_resolved", 1): ComplaintResolvedV1,
    ("complaint_closed", 1): ComplaintClosedV1,
    ("complaint_returned", 1): ComplaintReturnedV1,
    ("complaint_sla_warning", 1): SlaWarningV1,
    ("complaint_sla_breached", 1): SlaBreachedV1,
    ("unit_stage_changed", 1): UnitStageChangedV1,
    ("complaint_info_added", 1): ComplaintInfoAddedV1,
    ("complaint_rated", 1): ComplaintRatedV1,
    ("complaint_reopened", 1): ComplaintReopenedV1,
    ("complaint_submitted", 1): ComplaintSubmittedV1,
}

# Which service publishes each event type; the exchange is "<producer>.events".
PRODUCERS: dict[str, str] = {
    "complaint_received": "intake",
    "complaint_attachment_added": "intake",
    "complaint_routed": "routing",
    "notification_sent": "notification",
    "notification_failed": "notification",
    "complaint_acknowledged": "routing",
    "complaint_work_started": "routing",
    "complaint_info_requested": "routing",
    "complaint_responded": "routing",
    "complaint_resolved": "routing",
    "complaint_closed": "routing",
    "complaint_returned": "routing",
    "complaint_sla_warning": "routing",
    "complaint_sla_breached": "routing",
    "unit_stage_changed": "routing",
    "complaint_info_added": "intake",
    "complaint_rated": "intake",
    "complaint_reopened": "intake",
    "complaint_submitted": "channels",
}
