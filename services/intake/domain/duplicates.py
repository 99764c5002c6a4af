"""Duplicate submissions: the same contact sending a near-identical text within a week.

People resubmit when they are unsure the first attempt worked (a slow connection, a second
channel). Such a submission is linked to the earlier complaint instead of opening a second case,
and the person is told the earlier tracking code.
"""

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from rapidfuzz import fuzz

WINDOW = timedelta(days=7)
THRESHOLD = 90.0  # rapidfuzz ratio (0..100) on normalized text

_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalize(text: str) -> str:
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.casefold())).strip()


def similarity(a: str, b: str) -> float:
    return fuzz.ratio(normalize(a), normalize(b))


def find_duplicate(
    description: str, earlier: Iterable[tuple[str, str, datetime]], now: datetime
) -> str | None:
    """The id of the most similar earlier complaint (id, description, created_at) within the
    window and above the threshold, or None."""
    best_id, best_score = None, THRESHOLD
    for complaint_id, text, created_at in earlier:
        if now - created_at > WINDOW:
            continue
        score = similarity(description, text)
        if score >= best_score:
            best_id, best_score = complaint_id, score
    return best_id
