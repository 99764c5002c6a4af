"""What a message may say about a confidential complaint.

One policy, applied twice: the planner stores only redacted contexts, and the renderer redacts
again, so a context built elsewhere (a retry, a hand-made preview) cannot leak either.
"""

from collections.abc import Mapping
from typing import Any

AUDIENCES: tuple[str, ...] = ("complainant", "unit")

# A confidential complainant may share a phone or mailbox with the person they report on, so the
# message says only that there is news and where to read it (the tracking page asks nothing more).
COMPLAINANT_CONFIDENTIAL_KEYS: frozenset[str] = frozenset({"confidential", "tracking_url"})

# Units learn of a confidential complaint but read its contents only inside the inbox.
# Free text written by the complainant or by another unit is blanked; the rest (category, dates,
# links) is what the unit needs to act and says nothing about the complainant.
UNIT_CONFIDENTIAL_BLANKED: tuple[str, ...] = ("summary", "return_reason")


def is_confidential(context: Mapping[str, Any]) -> bool:
    return bool(context.get("confidential"))


def redact(audience: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``context`` holding only what ``audience`` may read."""
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    if not is_confidential(context):
        return dict(context)
    if audience == "complainant":
        return {k: v for k, v in context.items() if k in COMPLAINANT_CONFIDENTIAL_KEYS}
    return {k: "" if k in UNIT_CONFIDENTIAL_BLANKED else v for k, v in context.items()}
