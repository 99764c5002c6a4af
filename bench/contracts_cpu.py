"""CPU per event of `build_event` and `load_event` for the hot event types.

    .venv/bin/python -m bench.contracts_cpu [--rounds 5] [--n 4000]

Measures time.process_time over many calls (so other processes on the machine do not count)
for complaint_received, complaint_routed and notification_sent: build_event from the data a
producer passes (datetime and UUID objects); load_event of the decoded dict (what a nameko
consumer hands over: kombu has already parsed the JSON) and of the JSON bytes.
To compare two trees in the same minutes, run it alternately with PYTHONPATH set to each:

    cd /tmp; for i in 1 2 3; do
      PYTHONPATH=/tmp/old /work/main/.venv/bin/python /work/main/bench/contracts_cpu.py
      PYTHONPATH=/work/main /work/main/.venv/bin/python /work/main/bench/contracts_cpu.py; done
"""

import argparse
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from shared.contracts import build_event, load_event

AT = datetime(2026, 11, 28, 8, 15, 30, 123456, tzinfo=UTC)


def samples() -> dict[str, dict]:
    complaint_id = uuid.uuid4()
    return {
        "complaint_received": {
            "complaint_id": complaint_id, "tracking_code": "DMS-7KQ4-MX9T-2BH3",
            "channel": "web", "category": "nikah_rujuk",
            "description": "Pendaftaran nikah di KUA Merigi sudah dua minggu belum diproses.",
            "kecamatan_code": "17.08.05", "desa_code": None, "unit_hint": None,
            "unit_hint_trusted": False, "confidentiality": "public",
            "contact_channels": ["email"], "received_at": AT, "attachments": [],
        },
        "complaint_routed": {
            "complaint_id": str(complaint_id), "tracking_code": "DMS-7KQ4-MX9T-2BH3",
            "unit_code": "kua-merigi", "unit_name": "KUA Kecamatan Merigi", "unit_type": "kua",
            "stage": "live", "rule": "kua_by_kecamatan",
            "reason": "Kategori nikah_rujuk di kecamatan asal", "category": "nikah_rujuk",
            "channel": "web", "confidentiality": "public", "contact_channels": ["email"],
            "kecamatan_code": "17.08.05", "summary": "Pendaftaran nikah belum diproses",
            "routed_at": AT, "due_at": AT + timedelta(days=5), "status": "routed", "seq": 1,
        },
        "notification_sent": {
            "complaint_id": str(complaint_id), "delivery_id": str(uuid.uuid4()),
            "cause_event_id": str(uuid.uuid4()), "audience": "unit", "channel": "email",
            "provider": "file", "template": "complaint_routed_unit", "sent_at": AT,
        },
    }


def per_call_us(func, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        func()
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=4000)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    for event_type, data in samples().items():
        built = build_event(event_type, data, correlation_id="c-1")
        body = json.dumps(built).encode()
        decoded = json.loads(body)
        load_event(body)  # warm (schemas, compiled paths)
        for _ in range(args.rounds):
            calls = {
                "build": partial(build_event, event_type, data, correlation_id="c-1"),
                "load dict": partial(load_event, decoded, expected_types=(event_type,)),
                "load bytes": partial(load_event, body, expected_types=(event_type,)),
            }
            for what, call in calls.items():
                results.setdefault(f"{what} {event_type}", []).append(per_call_us(call, args.n))
    for name, values in results.items():
        print(f"{name:32s} {min(values):7.1f} us (min of {len(values)}; max {max(values):.1f})")
    print(json.dumps({name: round(min(v), 1) for name, v in results.items()}))


if __name__ == "__main__":
    main()
