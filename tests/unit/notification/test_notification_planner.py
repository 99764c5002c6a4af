import uuid
from datetime import UTC, datetime

import pytest

from services.notification.domain.planner import (
    PlannedDelivery,
    complainant_channel,
    delivery_id_for,
    plan_deliveries,
)
from services.notification.domain.render import TemplateCatalogue
from shared.contracts.envelope import build_event
from shared.contracts.events import ComplaintRoutedV1

BASE_URL = "https://dumas.kemenag-kepahiang.example/"
CAUSE = uuid.UUID("0d9b3c1e-6a2f-4f7e-8b5d-1c2e3f4a5b6c")
CATALOGUE = TemplateCatalogue()


def make_routed(**overrides):
    """ComplaintRoutedV1 data as a consumer has it after loading (UUIDs, aware datetimes)."""
    raw = {
        "complaint_id": "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10",
        "tracking_code": "KPH-26-0417",
        "unit_code": "kua-kabawetan",
        "unit_name": "KUA Kecamatan Kabawetan",
        "unit_type": "kua",
        "stage": "live",
        "rule": "kua_by_kecamatan",
        "reason": "Kategori nikah_rujuk di kecamatan 17.08.06",
        "category": "nikah_rujuk",
        "channel": "web",
        "confidentiality": "public",
        "contact_channels": ["email", "phone"],
        "kecamatan_code": "17.08.06",
        "summary": "Berkas nikah sudah lengkap, jadwal pemeriksaan belum ditetapkan.",
        "routed_at": datetime(2026, 11, 23, 2, 20, tzinfo=UTC).isoformat(),
        "due_at": datetime(2026, 12, 7, 9, 0, tzinfo=UTC).isoformat(),
    }
    raw.update(overrides)
    return ComplaintRoutedV1().load(raw)


def plan(routed=None, cause=CAUSE, **kwargs):
    return plan_deliveries(routed or make_routed(), cause, public_base_url=BASE_URL, **kwargs)


def by_audience(deliveries):
    return {d.audience: d for d in deliveries}


def test_unit_gets_the_new_complaint_by_email_by_default():
    unit = by_audience(plan())["unit"]
    assert unit == PlannedDelivery(
        delivery_id=unit.delivery_id,
        audience="unit",
        recipient="unit:kua-kabawetan",
        channel="email",
        template_event="complaint_routed",
        context=unit.context,
    )
    assert unit.context["inbox_url"] == (
        "https://dumas.kemenag-kepahiang.example/inbox/3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10"
    )
    assert unit.context["category_name"] == "Nikah dan Rujuk"
    assert unit.context["summary"].startswith("Berkas nikah")


def test_unit_preferred_channel_is_used():
    assert by_audience(plan(unit_channel="whatsapp"))["unit"].channel == "whatsapp"


def test_unknown_unit_channel_is_refused():
    with pytest.raises(ValueError):
        plan(unit_channel="pigeon")


def test_complainant_gets_one_message_with_tracking_link_unit_and_due_date():
    deliveries = plan()
    complainant = [d for d in deliveries if d.audience == "complainant"]
    assert len(complainant) == 1
    (delivery,) = complainant
    assert delivery.recipient == "complainant"
    assert delivery.template_event == "complaint_routed"
    assert delivery.context == {
        "confidential": False,
        "tracking_code": "KPH-26-0417",
        "tracking_url": "https://dumas.kemenag-kepahiang.example/lacak/KPH-26-0417",
        "unit_name": "KUA Kecamatan Kabawetan",
        "due_at": "2026-12-07T09:00:00+00:00",
    }


def test_complainant_who_wrote_on_whatsapp_gets_the_reply_on_whatsapp():
    routed = make_routed(channel="whatsapp", contact_channels=["whatsapp", "email"])
    assert by_audience(plan(routed))["complainant"].channel == "whatsapp"


def test_whatsapp_number_from_a_web_form_is_not_used_for_a_first_message():
    assert complainant_channel("web", ["whatsapp"]) is None
    assert complainant_channel("web", ["whatsapp", "phone"]) == "sms"


@pytest.mark.parametrize(
    ("channel", "contacts", "expected"),
    [
        ("whatsapp", ["whatsapp"], "whatsapp"),
        ("whatsapp", ["email"], "email"),
        ("web", ["email", "phone"], "email"),
        ("ptsp", ["phone"], "sms"),
        ("qr", [], None),
    ],
)
def test_complainant_channel_preference(channel, contacts, expected):
    assert complainant_channel(channel, contacts) == expected


def test_anonymous_complaint_without_contact_only_notifies_the_unit():
    routed = make_routed(confidentiality="anonymous", contact_channels=[])
    deliveries = plan(routed)
    assert [d.audience for d in deliveries] == ["unit"]


def test_confidential_complaint_plans_no_summary_for_unit_and_no_details_for_complainant():
    routed = make_routed(confidentiality="confidential", summary="Oknum petugas meminta uang")
    deliveries = by_audience(plan(routed))
    assert deliveries["unit"].context["summary"] == ""
    assert deliveries["unit"].context["confidential"] is True
    assert deliveries["complainant"].context == {
        "confidential": True,
        "tracking_url": "https://dumas.kemenag-kepahiang.example/lacak/KPH-26-0417",
    }
    for delivery in deliveries.values():
        message = CATALOGUE.render(delivery.template_event, delivery.audience, delivery.context)
        assert "Oknum" not in message.text + message.html + message.sms
    complainant = CATALOGUE.render(
        "complaint_routed", "complainant", deliveries["complainant"].context
    )
    assert "Kabawetan" not in complainant.text + complainant.subject + complainant.sms


def test_delivery_ids_are_deterministic_so_a_redelivered_event_plans_the_same_ids():
    first = [d.delivery_id for d in plan()]
    again = [d.delivery_id for d in plan(cause=str(CAUSE).upper())]
    assert first == again
    assert len(set(first)) == len(first)


def test_delivery_ids_differ_per_cause_event_recipient_and_channel():
    other_cause = [d.delivery_id for d in plan(cause=uuid.uuid4())]
    assert set(other_cause).isdisjoint(d.delivery_id for d in plan())
    base = delivery_id_for(CAUSE, "unit", "unit:a", "email")
    assert base != delivery_id_for(CAUSE, "unit", "unit:b", "email")
    assert base != delivery_id_for(CAUSE, "unit", "unit:a", "sms")
    assert len(base) <= 64  # fits NotificationSentV1.delivery_id


def test_planned_contexts_satisfy_their_templates_and_render():
    for delivery in plan():
        required = CATALOGUE.required_variables(delivery.template_event, delivery.audience)
        assert required <= set(delivery.context)
        CATALOGUE.render(delivery.template_event, delivery.audience, delivery.context)


def test_planner_accepts_data_straight_from_an_envelope_and_stays_json_ready():
    import json

    envelope = build_event("complaint_routed", make_routed(), correlation_id="c")
    deliveries = plan(envelope["data"], cause=envelope["event_id"])
    json.dumps([d.context for d in deliveries])
    assert deliveries == plan(make_routed(), cause=envelope["event_id"])
