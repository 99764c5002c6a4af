"""Who is told what for each lifecycle event (domain only, no I/O)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notification.domain.lifecycle import (
    ComplaintView,
    NotYetRouted,
    Policy,
    plan_event,
)
from services.notification.domain.render import TemplateCatalogue

POLICY = Policy(public_base_url="https://dumas.example")
AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
CATALOGUE = TemplateCatalogue()


def cause():
    return str(uuid.uuid4())


def routed_data(**overrides):
    data = {
        "complaint_id": uuid.UUID("3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10"),
        "tracking_code": "DMS-AAAA-BBBB", "unit_code": "kua-merigi",
        "unit_name": "KUA Kecamatan Merigi", "unit_type": "kua", "stage": "live",
        "rule": "r", "reason": "r", "category": "nikah_rujuk", "channel": "web",
        "confidentiality": "public", "contact_channels": ["email"], "kecamatan_code": None,
        "summary": "Ringkasan.", "routed_at": AT, "due_at": AT + timedelta(days=10),
        "status": "routed", "seq": 1,
    }
    data.update(overrides)
    return data


def view(**overrides):
    plan = plan_event("complaint_routed", routed_data(**overrides), cause(), None, POLICY)
    return plan.view


def action(seq, **fields):
    return {"complaint_id": "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10",
            "tracking_code": "DMS-AAAA-BBBB", "unit_code": "kua-merigi",
            "actor_role": "unit_operator", "status": "in_progress", "seq": seq, "at": AT,
            **fields}


def sla_data(unit_code="kua-merigi"):
    return {"complaint_id": "3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10",
            "tracking_code": "DMS-AAAA-BBBB", "unit_code": unit_code,
            "due_at": AT + timedelta(days=1), "at": AT}


@pytest.mark.parametrize("event_type, fields, template", [
    ("complaint_acknowledged", {}, "complaint_acknowledged"),
    ("complaint_info_requested", {"question": "Kapan?"}, "info_requested"),
    ("complaint_responded", {"response": "Jawaban."}, "complaint_responded"),
    ("complaint_resolved", {"resolution": "Selesai."}, "complaint_resolved"),
    ("complaint_closed", {"reason": "Ditutup."}, "complaint_closed"),
])
def test_each_step_sends_one_renderable_message_to_the_complainant(event_type, fields, template):
    plan = plan_event(event_type, action(2, **fields), cause(), view(), POLICY)
    [d] = plan.deliveries
    assert (d.audience, d.channel, d.template_event) == ("complainant", "email", template)
    CATALOGUE.render(d.template_event, d.audience, d.context)  # every variable is there
    assert plan.view.notified_seq == 2


def test_a_step_older_than_one_already_announced_is_not_announced():
    v = plan_event("complaint_responded", action(3, response="x"), cause(), view(), POLICY).view
    assert plan_event("complaint_acknowledged", action(2), cause(), v, POLICY).deliveries == []


def test_a_lifecycle_event_before_routing_waits():
    with pytest.raises(NotYetRouted):
        plan_event("complaint_acknowledged", action(2), cause(), None, POLICY)


def test_nothing_for_a_complainant_without_contact_but_the_unit_still_hears():
    v = view(contact_channels=[], confidentiality="anonymous")
    assert plan_event("complaint_acknowledged", action(2), cause(), v, POLICY).deliveries == []
    info = {"complaint_id": v.complaint_id, "tracking_code": "DMS-AAAA-BBBB", "channel": "web",
            "text": "x", "at": AT}
    [d] = plan_event("complaint_info_added", info, cause(), v, POLICY).deliveries
    assert (d.audience, d.recipient, d.template_event) == ("unit", "unit:kua-merigi",
                                                           "info_received")


def test_confidential_complainant_context_holds_only_the_tracking_link():
    v = view(confidentiality="confidential")
    [d] = plan_event("complaint_responded", action(2, response="Rahasia"), cause(), v,
                     POLICY).deliveries
    assert set(d.context) == {"confidential", "tracking_url"}


def test_a_returned_complaint_rerouted_tells_the_new_unit_why_once():
    v = view()
    v = plan_event("complaint_returned", action(2, reason="Bukan wilayah kami."), cause(), v,
                   POLICY).view
    plan = plan_event("complaint_routed", routed_data(
        unit_code="kua-kabawetan", unit_name="KUA Kecamatan Kabawetan", seq=3), cause(), v,
        POLICY)
    unit = [d for d in plan.deliveries if d.audience == "unit"]
    assert [(d.recipient, d.template_event) for d in unit] == [
        ("unit:kua-kabawetan", "complaint_returned_rerouted")]
    assert unit[0].context["previous_unit_name"] == "KUA Kecamatan Merigi"
    assert unit[0].context["return_reason"] == "Bukan wilayah kami."
    assert sum(d.audience == "complainant" for d in plan.deliveries) == 1
    # a late copy of the first routing changes nothing
    assert plan_event("complaint_routed", routed_data(), cause(), plan.view, POLICY
                      ).deliveries == []


def test_a_breach_goes_to_the_unit_its_head_and_the_desk_a_warning_to_the_unit_only():
    v = view()
    breach = plan_event("complaint_sla_breached", sla_data(), cause(), v, POLICY).deliveries
    assert [d.recipient for d in breach] == [
        "unit:kua-merigi", "head:kua-merigi", "unit:kankemenag-kepahiang"]
    assert {d.template_event for d in breach} == {"sla_breach"}
    warning = plan_event("complaint_sla_warning", sla_data(), cause(), v, POLICY).deliveries
    assert [d.recipient for d in warning] == ["unit:kua-merigi"]
    # the clock of a unit that returned the complaint does not ring
    assert plan_event("complaint_sla_warning", sla_data("kua-ujan-mas"), cause(), v,
                      POLICY).deliveries == []


def test_whatsapp_reply_window_follows_the_complainants_last_message():
    v = view(channel="whatsapp", contact_channels=["whatsapp"])
    plan = plan_event("complaint_acknowledged", action(2), cause(), v, POLICY)
    [d] = plan.deliveries
    assert d.channel == "whatsapp"
    assert plan.reply_windows[d.delivery_id] == AT + timedelta(hours=24)
    assert isinstance(v, ComplaintView)
