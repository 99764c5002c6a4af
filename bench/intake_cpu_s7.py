"""intake's routed-status transaction and lone reads alone: CPU per event / call, client and
PostgreSQL backend (session 7, docs/performance.md "Session 7: intake").

    PYTHONPATH=. .venv/bin/python bench/intake_cpu_s7.py [--events 600] [--batch 1] [--green]

A fresh migrated intake database gets `--events` complaints (and `--warm` more) through
`handlers.submit_complaint`; then, measured: `handlers.apply_status_events` of one
`complaint_routed` per complaint, `--batch` events a transaction (what intake's batched consumer
does after `load_event`), and as many `stored_answer` and `contact_for` calls, each on a fresh
session as the service's `_replay` and `get_contact` use them. Per phase: this process's CPU
(time.process_time), the CPU of the database's PostgreSQL backends (bench.hop_cpu.BackendCpu,
from /proc/<pid>/schedstat, so the server must run on this machine) and wall time, per event
or call. `--green`: eventlet's monkey patching first, as nameko's runner does, so psycopg2
waits for each round trip through eventlet's hub (the services' cost of a round trip).
`--prepared` (session 8): `apply_status_events(..., prepared=True)`, as the service calls it
(its statements PREPAREd once per connection), where the tree's handlers take it.
Only the services' public API is used, so an older tree runs it too (PYTHONPATH first).
"""

import argparse
import inspect
import json
import sys
import time
import uuid

if "--green" in sys.argv:
    import eventlet

    eventlet.monkey_patch()

from datetime import UTC, datetime  # noqa: E402

from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from bench.hop_cpu import BackendCpu  # noqa: E402
from bench.infra import PG_SERVER, Databases  # noqa: E402
from services.cli import SERVICES_DIR  # noqa: E402
from services.intake import db as intake_db  # noqa: E402
from services.intake import handlers  # noqa: E402
from services.intake.domain.sealing import PersonalDataBox, new_key  # noqa: E402
from services.intake.domain.validation import validate_submission  # noqa: E402
from shared.contracts import build_event, load_event  # noqa: E402
from shared.db import UnitOfWork, make_engine  # noqa: E402
from shared.migrate import upgrade  # noqa: E402

BOX = PersonalDataBox(new_key())


def _routed(accepted) -> object:
    now = datetime.now(UTC)
    return load_event(build_event("complaint_routed", {
        "complaint_id": accepted.complaint_id, "tracking_code": accepted.tracking_code,
        "unit_code": "kua-merigi", "unit_name": "KUA Kecamatan Merigi", "unit_type": "kua",
        "stage": "pilot", "rule": "kua_kecamatan", "reason": "wilayah",
        "category": "nikah_rujuk", "channel": "web", "confidentiality": "public",
        "contact_channels": ["email"], "routed_at": now, "due_at": now, "status": "routed",
        "seq": 1,
    }, correlation_id=accepted.complaint_id))


def main(events: int, warm: int, batch: int, prepared: bool = False) -> dict:
    dbs = Databases()
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", pool_size=1)
    engine = None
    try:
        url = dbs.create("s7_intake")
        upgrade(SERVICES_DIR / "intake" / "migrations", url)
        engine = make_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)

        def uow():
            return UnitOfWork(factory, intake_db.outbox, intake_db.processed_events)

        accepted = []
        for i in range(warm + events):
            clean = validate_submission({
                "category": "nikah_rujuk", "kecamatan_code": "17.08.05",
                "description": f"Pendaftaran nikah di KUA belum diproses, berkas nomor {i}.",
                "complainant": {"name": "Warga Uji",
                                "email": f"w{i}.{uuid.uuid4().hex[:6]}@contoh.id"},
            })
            key = f"kunci-{i}"
            accepted.append(handlers.submit_complaint(
                uow, clean, box=BOX, idempotent=handlers.IdempotencyRecord(
                    "api:k1", key, "h" * 64, lambda a: (201, {"kode": a.tracking_code}))))
        routed = [_routed(a) for a in accepted]
        backend = BackendCpu(admin, url.rsplit("/", 1)[1])

        takes = "prepared" in inspect.signature(handlers.apply_status_events).parameters
        options = {"prepared": True} if prepared and takes else {}

        def routed_step(i):
            handlers.apply_status_events(uow, routed[i:i + batch], **options)

        def answer_step(i):
            with Session(engine) as session:
                assert handlers.stored_answer(session, "api:k1", f"kunci-{i}") is not None

        def contact_step(i):
            with Session(engine) as session:
                assert handlers.contact_for(session, accepted[i].complaint_id, BOX)

        result = {"events": events, "batch": batch, "green": "eventlet" in sys.modules,
                  "prepared": bool(options)}
        for name, step, stride in (("routed", routed_step, batch),
                                   ("stored_answer", answer_step, 1),
                                   ("contact_for", contact_step, 1)):
            for i in range(0, warm, stride):
                step(i)
            b0, c0, w0 = backend(), time.process_time(), time.perf_counter()
            for i in range(warm, warm + events, stride):
                step(i)
            c1, w1, b1 = time.process_time(), time.perf_counter(), backend()
            result[name] = {"client_us": round(1e6 * (c1 - c0) / events, 1),
                            "backend_us": round(1e6 * (b1 - b0) / events, 1),
                            "wall_us": round(1e6 * (w1 - w0) / events, 1)}
        return result
    finally:
        if engine is not None:
            engine.dispose()
        admin.dispose()
        dbs.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--warm", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--green", action="store_true")
    parser.add_argument("--prepared", action="store_true")
    args = parser.parse_args()
    print(json.dumps(main(args.events, args.warm, args.batch, args.prepared)))
