"""The dates notification promises the complainant are counted in working days, as routing's."""

from datetime import UTC, datetime

from services.notification.domain.lifecycle import ComplaintView, Policy, plan_event
from services.routing.domain.sla import FEEDBACK_WORKING_DAYS
from shared.workdays import WIB, add_working_days

POLICY = Policy(public_base_url="https://dumas.example")
# Fri 11 Dec 2026 10:00 WIB; 24 Dec (cuti bersama) and 25 Dec (Natal) are not working days.
AT = datetime(2026, 12, 11, 10, 0, tzinfo=WIB).astimezone(UTC)
VIEW = ComplaintView(
    complaint_id="3f0c6a52-8d5e-4c1b-9a57-2b1e6f4d9c10", tracking_code="DMS-AAAA-BBBB",
    unit_code="kua-merigi", unit_name="KUA Kecamatan Merigi", category="nikah_rujuk",
    channel="web", confidentiality="public", contact_channels=("email",), due_at=AT,
    routed_seq=1, notified_seq=1,
)


def context_of(event_type, **fields):
    data = {"complaint_id": VIEW.complaint_id, "tracking_code": VIEW.tracking_code,
            "unit_code": VIEW.unit_code, "actor_role": "unit_operator", "status": "x",
            "seq": 2, "at": AT, **fields}
    [delivery] = plan_event(event_type, data, "c0ffee00-0000-4000-8000-000000000001", VIEW,
                            POLICY).deliveries
    return delivery.context


def test_the_feedback_window_after_resolution_is_ten_working_days_past_christmas():
    until = datetime.fromisoformat(context_of("complaint_resolved", resolution="Selesai.")[
        "feedback_until"])
    assert until == datetime(2026, 12, 29, 16, 0, tzinfo=WIB)  # not 25 Dec (14 calendar days)
    assert POLICY.feedback_within_working_days == FEEDBACK_WORKING_DAYS  # routing closes then
    assert until == add_working_days(AT, FEEDBACK_WORKING_DAYS)


def test_the_answer_deadline_for_a_question_is_five_working_days():
    answer_by = datetime.fromisoformat(context_of("complaint_info_requested", question="?")[
        "answer_by"])
    assert answer_by == datetime(2026, 12, 18, 16, 0, tzinfo=WIB)
