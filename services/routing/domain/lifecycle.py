"""The complaint lifecycle routing owns: who may do what, from which status, with what result.

    routed --acknowledge--> acknowledged --start--> in_progress --respond--> responded
       |                        |  request_info            |                    |
       |                        v                          v                    v resolve
       |                  info_requested <--(complainant adds info: back to in_progress)
       |                                                                   resolved
       |   return (unit: not ours) -> the desk; reroute / close / reject / duplicate (desk)
       v
    after `resolved`: a rating is recorded; "not resolved" reopens (in_progress); with no answer
    for FEEDBACK_WORKING_DAYS the complaint is closed by the clock.

Every transition bumps the complaint's `seq` and is published as an event (`EVENTS`) that
carries the resulting status. Notes change nothing and are not published: they are internal.
"""

from dataclasses import dataclass

UNIT_ROLES = frozenset({"unit_operator", "unit_head"})
DESK_ROLES = frozenset({"desk_admin"})
READ_ONLY_ROLES = frozenset({"auditor"})
INBOX_ROLES = UNIT_ROLES | DESK_ROLES | READ_ONLY_ROLES

OPEN = frozenset({"routed", "acknowledged", "in_progress", "info_requested", "responded"})
ACTIVE = OPEN | {"resolved"}


class LifecycleError(Exception):
    """An action that is not allowed now; `code` is machine-readable, the message Indonesian."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Action:
    name: str
    label: str  # button text (Bahasa Indonesia)
    from_statuses: frozenset[str]
    to_status: str | None  # None: no status change (a note) or decided by the handler
    event_type: str | None
    roles: frozenset[str]
    text_field: str | None = None  # the payload field of the event that carries the text
    text_label: str = ""
    text_required: bool = False


_STAFF = UNIT_ROLES | DESK_ROLES

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("acknowledge", "Terima pengaduan", frozenset({"routed"}), "acknowledged",
               "complaint_acknowledged", _STAFF),
        Action("start", "Mulai tangani", frozenset({"acknowledged"}), "in_progress",
               "complaint_work_started", _STAFF),
        Action("request_info", "Minta informasi tambahan",
               frozenset({"acknowledged", "in_progress"}), "info_requested",
               "complaint_info_requested", _STAFF, "question", "Pertanyaan untuk pelapor", True),
        Action("respond", "Kirim jawaban", frozenset({"acknowledged", "in_progress"}),
               "responded", "complaint_responded", _STAFF, "response",
               "Jawaban untuk pelapor (publik)", True),
        Action("resolve", "Tandai selesai",
               frozenset({"acknowledged", "in_progress", "responded"}), "resolved",
               "complaint_resolved", _STAFF, "resolution", "Ringkasan penyelesaian", True),
        Action("note", "Simpan catatan internal", OPEN | {"resolved"}, None, None, _STAFF,
               "note", "Catatan internal (tidak terlihat pelapor)", True),
        Action("return", "Kembalikan ke Meja Dumas",
               frozenset({"routed", "acknowledged", "in_progress"}), "routed",
               "complaint_returned", UNIT_ROLES, "reason", "Alasan bukan wewenang unit", True),
        Action("reroute", "Alihkan ke unit lain", OPEN, "routed", "complaint_routed",
               DESK_ROLES),
        Action("close", "Tutup", ACTIVE, "closed", "complaint_closed", DESK_ROLES, "reason",
               "Alasan penutupan", True),
        Action("reject", "Tolak", ACTIVE, "closed", "complaint_closed", DESK_ROLES, "reason",
               "Alasan penolakan", True),
        Action("duplicate", "Tandai duplikat", ACTIVE, "closed", "complaint_closed", DESK_ROLES,
               "reason", "Kode pelacakan pengaduan asal", True),
    )
}

# Transitions caused by the complainant (through intake) or the clock.
INFO_ADDED_FROM = frozenset({"info_requested"})
REOPEN_FROM = frozenset({"resolved", "responded"})
MAX_TEXT = {"question": 2000, "response": 4000, "resolution": 4000, "note": 4000,
            "reason": 500}


def can_view(role: str, user_unit: str | None, unit_code: str, shadow_unit: str | None) -> bool:
    """Whether a person sees a complaint at all (units: their own, or a shadow copy)."""
    if role in DESK_ROLES or role in READ_ONLY_ROLES:
        return True
    if role in UNIT_ROLES:
        return user_unit is not None and user_unit in (unit_code, shadow_unit)
    return False


def can_act(role: str, user_unit: str | None, unit_code: str) -> bool:
    """Whether a person may act on a complaint (a shadow copy is read-only)."""
    if role in DESK_ROLES:
        return True
    return role in UNIT_ROLES and user_unit == unit_code


def available_actions(role: str, user_unit: str | None, unit_code: str, status: str) -> list:
    if not can_act(role, user_unit, unit_code):
        return []
    return [a for a in ACTIONS.values() if role in a.roles and status in a.from_statuses]


def check(action_name: str, role: str, user_unit: str | None, unit_code: str, status: str,
          text: str | None) -> Action:
    """The action, if this person may do it now with this text; else LifecycleError."""
    action = ACTIONS.get(action_name)
    if action is None:
        raise LifecycleError("unknown_action", "Tindakan tidak dikenal.")
    if role not in action.roles or not can_act(role, user_unit, unit_code):
        raise LifecycleError("forbidden", "Anda tidak berwenang melakukan tindakan ini.")
    if status not in action.from_statuses:
        raise LifecycleError(
            "invalid_transition",
            f"Tindakan \u201c{action.label}\u201d tidak dapat dilakukan pada status ini.",
        )
    if action.text_field:
        cleaned = (text or "").strip()
        if action.text_required and not cleaned:
            raise LifecycleError("text_required", f"{action.text_label} wajib diisi.")
        if len(cleaned) > MAX_TEXT[action.text_field]:
            raise LifecycleError(
                "text_too_long",
                f"{action.text_label} terlalu panjang (maksimal "
                f"{MAX_TEXT[action.text_field]} karakter).",
            )
    return action


def close_reason(action_name: str, text: str) -> str:
    """The public reason of a desk closure."""
    text = text.strip()
    if action_name == "reject":
        return f"Ditolak: {text}"[:500]
    if action_name == "duplicate":
        return f"Duplikat dari pengaduan {text}"[:500]
    return text[:500]
