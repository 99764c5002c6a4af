"""Synthetic complaint histories for tests and benchmarks (no personal data, deterministic).

`stories(n, seed=...)` yields, per complaint, the list of (event_type, data) its producers would
publish: received, routed, and depending on chance acknowledged, responded, resolved, closed,
returned and re-routed, SLA warnings/breaches, a rating, notifications. Distributions are
skewed like a real office (most complaints through the web and QR posters, a unit mostly decided
by kecamatan and category), so the counter tables get realistic cardinality.
"""

# The per-complaint helpers below close over the loop variables and are used within their own
# iteration only.
# ruff: noqa: B023

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from shared.workdays import WIB, add_working_days

KECAMATAN = tuple(f"17.08.{n:02d}" for n in range(1, 9))
CHANNEL_WEIGHTS = {"web": 35, "qr": 25, "whatsapp": 20, "ptsp": 10, "rumah_digital": 5,
                   "website": 4, "open311": 1}
CATEGORY_WEIGHTS = {"nikah_rujuk": 30, "pendidikan_madrasah": 15, "haji_umrah": 10,
                    "pelayanan_ptsp": 10, "wakaf": 8, "zakat_infak": 6, "guru_tendik": 6,
                    "kemasjidan": 5, "integritas": 4, "lainnya": 6}
CONFIDENTIALITY_WEIGHTS = {"public": 80, "anonymous": 12, "confidential": 8}
KUA_CATEGORIES = {"nikah_rujuk", "wakaf", "zakat_infak", "kemasjidan"}
DESK = "kankemenag-kepahiang"


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def unit_for(category: str, kecamatan: str, rng: random.Random) -> str:
    if category in KUA_CATEGORIES:
        return f"kua-{kecamatan[-2:]}"
    if category in ("pendidikan_madrasah", "guru_tendik"):
        return f"madrasah-{kecamatan[-2:]}-{rng.randrange(1, 4)}"
    return DESK


def stories(n: int, seed: int = 2026, start: date = date(2026, 1, 5), days: int = 365
            ) -> Iterator[list[tuple[str, dict]]]:
    rng = random.Random(seed)
    for i in range(n):
        complaint_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        code = f"DMS-{i:04X}-GEN{seed % 10}-{rng.randrange(16**4):04X}"[:32]
        day = start + timedelta(days=rng.randrange(days))
        received_at = datetime.combine(day, datetime.min.time(), tzinfo=WIB).astimezone(UTC) \
            + timedelta(minutes=rng.randrange(6 * 60, 20 * 60))
        channel = _pick(rng, CHANNEL_WEIGHTS)
        category = _pick(rng, CATEGORY_WEIGHTS)
        kecamatan = rng.choice(KECAMATAN)
        confidentiality = _pick(rng, CONFIDENTIALITY_WEIGHTS)
        unit = unit_for(category, kecamatan, rng)
        common = {"complaint_id": complaint_id, "tracking_code": code}
        events: list[tuple[str, dict]] = [("complaint_received", {
            **common, "channel": channel, "category": category,
            "description": "Pengaduan sintetis untuk pengujian.", "kecamatan_code": kecamatan,
            "confidentiality": confidentiality, "contact_channels": [],
            "received_at": received_at,
        })]
        seq = 1
        routed_at = received_at + timedelta(seconds=rng.randrange(1, 120))
        due_at = add_working_days(received_at, 3 if category in ("integritas", "nikah_rujuk")
                                  else 5)

        def routed(unit_code, at, seq):
            return ("complaint_routed", {
                **common, "unit_code": unit_code, "unit_name": unit_code, "unit_type": "kua",
                "stage": "live", "rule": "generated", "reason": "Data sintetis",
                "category": category, "channel": channel, "confidentiality": confidentiality,
                "kecamatan_code": kecamatan, "routed_at": at, "due_at": due_at,
                "status": "routed", "seq": seq,
            })

        def action(event_type, status, at, **extra):
            nonlocal seq
            seq += 1
            return (event_type, {**common, "unit_code": unit, "actor_role": "unit_operator",
                                 "status": status, "seq": seq, "at": at, **extra})

        events.append(routed(unit, routed_at, seq))
        events.append(("notification_sent", {
            **common, "delivery_id": f"d-{i}", "cause_event_id": str(uuid.uuid4()),
            "audience": "unit", "channel": "email", "provider": "file",
            "template": "complaint_routed", "sent_at": routed_at + timedelta(seconds=5)}))
        at = routed_at
        if rng.random() < 0.05:  # not theirs: returned and re-routed to the desk
            at += timedelta(hours=rng.randrange(1, 30))
            events.append(action("complaint_returned", "routed", at, reason="Bukan wewenang"))
            unit = DESK
            seq += 1
            events.append(routed(unit, at + timedelta(minutes=1), seq))
        if rng.random() < 0.9:
            at += timedelta(hours=rng.choice((2, 20, 44, 70, 100, 150, 240)))
            events.append(action("complaint_acknowledged", "acknowledged", at))
            if at > due_at:
                events.append(("complaint_sla_breached", {
                    **common, "unit_code": unit, "due_at": due_at, "at": due_at}))
            if rng.random() < 0.8:
                at += timedelta(hours=rng.choice((3, 24, 48, 96, 200)))
                events.append(action("complaint_responded", "responded", at,
                                     response="Tanggapan unit."))
                if rng.random() < 0.85:
                    at += timedelta(hours=rng.choice((1, 24, 72, 150)))
                    events.append(action("complaint_resolved", "resolved", at,
                                         resolution="Selesai."))
                    if rng.random() < 0.4:
                        events.append(("complaint_rated", {
                            **common, "rating": rng.choices((1, 2, 3, 4, 5),
                                                            (5, 5, 15, 40, 35))[0],
                            "at": at + timedelta(hours=5)}))
        elif rng.random() < 0.5:
            events.append(("complaint_sla_breached", {
                **common, "unit_code": unit, "due_at": due_at, "at": due_at}))
        yield events
