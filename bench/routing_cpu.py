"""CPU per complaint of routing's `complaint_received` consumer body, client and PostgreSQL
backend (issue 8, session 8).

    PYTHONPATH=. .venv/bin/python bench/routing_cpu.py [--complaints N] [--batch N]
        [--profile] [--explain]

Against a fresh migrated routing database with its seeded unit registry, batches of
`complaint_received` events (as intake publishes them: the body goes through `load_event`)
go through `handlers.route_complaints`, the batched consumer's handler: claim, decision,
complaint, audit, outbox row and attachment references of the batch in one transaction.
``--batch`` is the batch size (under the full flow's load routing's batches hold 2-7 events;
the consumer takes up to 20). Every complaint is new; every tenth batch also carries a
redelivered event (already processed), and one complaint in four has an attachment.

Per complaint: this process's CPU (time.process_time) around the handler, and the CPU of the
PostgreSQL backend serving it (the scheduler's run time of /proc/<pid>/schedstat of
pg_backend_pid(), so the database must run on this machine); the bench's own work (building and
loading the events) is not counted. ``--profile`` prints cProfile (clock time.process_time) of
the handler; ``--explain`` prints EXPLAIN (ANALYZE, BUFFERS, VERBOSE) of one more batch's
statement, after the measured ones. Uses only the service's public API, so it also measures an
older revision:

    git archive <rev> | tar -x -C /tmp/dumas_rev
    PYTHONPATH=/tmp/dumas_rev .venv/bin/python bench/routing_cpu.py   # from this tree
"""

import argparse
import cProfile
import io
import json
import pstats
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import text

from bench.infra import Databases
from services.cli import SERVICES_DIR
from shared.contracts import build_event, load_event
from shared.migrate import upgrade

KECAMATAN = ("17.08.01", "17.08.02", "17.08.03", "17.08.04", "17.08.05", "17.08.06")
CATEGORIES = ("nikah_rujuk", "haji_umrah", "pendidikan_madrasah", "pelayanan_ptsp")
DESCRIPTION = ("Pendaftaran nikah di KUA sudah dua minggu belum diproses, padahal berkas sudah "
               "lengkap dan sudah diserahkan ke petugas.")


def _received(i: int, run: str, received_at: datetime) -> bytes:
    complaint_id = str(uuid.uuid4())
    data = {
        "complaint_id": complaint_id,
        "tracking_code": f"DMS-{run.upper()}-{i:06d}",
        "channel": ("web", "whatsapp", "ptsp")[i % 3],
        "category": CATEGORIES[i % len(CATEGORIES)],
        "description": f"{DESCRIPTION} Nomor berkas {run}-{i}.",
        "kecamatan_code": KECAMATAN[i % len(KECAMATAN)],
        "confidentiality": "public" if i % 5 else "confidential",
        "contact_channels": ["email"] if i % 2 else ["email", "whatsapp"],
        "received_at": received_at,
        "attachments": [] if i % 4 else [{
            "sha256": uuid.uuid4().hex * 2, "size": 1000 + i, "media_type": "image/jpeg",
            "name": f"foto-{i}.jpg"}],
    }
    envelope = build_event("complaint_received", data, correlation_id=complaint_id)
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def _backend_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as fh:
        return int(fh.read().split()[0]) / 1e9


def main(complaints: int = 2000, batch: int = 5, warm: int = 200, profile: bool = False,
         explain: bool = False) -> dict:
    from services.routing import handlers, registry_store
    from services.routing.commands import seed_registry
    from services.routing.db import metadata
    from shared.nameko_ext import Database, DatabaseAccess

    run = uuid.uuid4().hex[:6]
    dbs = Databases()
    provider = None
    try:
        url = dbs.create("routing_cpu")
        upgrade(SERVICES_DIR / "routing" / "migrations", url)
        seed_registry(url)
        provider = Database(metadata)
        provider.container = SimpleNamespace(
            config={"DATABASE_URL": url, "AMQP_URI": "memory://"}, service_name="routing")
        provider.setup()
        provider.relay = None  # never started: the staged rows stay in the outbox
        db = DatabaseAccess(provider)
        with provider.sessionmaker() as session:
            registry = registry_store.load(session)
        with provider.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()

        start = datetime.now(UTC) - timedelta(hours=1)
        bodies = [_received(i, run, start + timedelta(seconds=i))
                  for i in range(warm + complaints + batch)]
        profiler = cProfile.Profile(time.process_time) if profile else None
        client = backend = 0.0
        routed = 0
        for n, first in enumerate(range(0, warm + complaints, batch)):
            chunk = bodies[first:first + batch]
            if n % 10 == 9:
                chunk = [*chunk, bodies[first - 1]]  # a redelivery
            events = [load_event(b, expected_types=("complaint_received",)) for b in chunk]
            measured = first >= warm
            if measured:
                b0, c0 = _backend_cpu(pid), time.process_time()
                if profiler is not None:
                    profiler.enable()
            decisions = handlers.route_complaints(db.unit_of_work, registry, events)
            if measured:
                if profiler is not None:
                    profiler.disable()
                client += time.process_time() - c0
                backend += _backend_cpu(pid) - b0
                routed += sum(d is not None for d in decisions)
        # Every batch ran on the one pooled connection whose backend was measured.
        assert provider.engine.pool.checkedin() == 1, provider.engine.pool.status()
        result = {"complaints": routed, "batch": batch,
                  "client_cpu_ms": round(1000 * client / routed, 4),
                  "backend_cpu_ms": round(1000 * backend / routed, 4)}
        if explain:
            result["explain"] = _explain(db, provider.engine, registry, handlers,
                                         [load_event(b, expected_types=("complaint_received",))
                                          for b in bodies[-batch:]])
        if profiler is not None:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(40)
            result["profile"] = out.getvalue()
        return result
    finally:
        if provider is not None:
            provider.engine.dispose()
        dbs.close()


class _Captured(Exception):
    pass


def _explain(db, engine, registry, handlers, events) -> str:
    """EXPLAIN (ANALYZE, BUFFERS, VERBOSE) of the statement the handler would send for
    `events`, on the connection the measured batches used (its prepared statement and plan
    cache as they are), rolled back."""
    params = {}

    def capture(_connection, p):
        params.update(p)
        raise _Captured

    original, handlers._execute_prepared = handlers._execute_prepared, capture
    try:
        handlers.route_complaints(db.unit_of_work, registry, events)
    except _Captured:
        pass
    finally:
        handlers._execute_prepared = original
    statement = handlers._PG_EXECUTE.replace(
        "EXECUTE", "EXPLAIN (ANALYZE, BUFFERS, VERBOSE) EXECUTE", 1)
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(statement, params).all()
        conn.rollback()
    return "\n".join(r[0] for r in plan)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--complaints", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    outcome = main(args.complaints, args.batch, args.warm, args.profile, args.explain)
    extra = [outcome.pop(k, None) for k in ("explain", "profile")]
    print(json.dumps(outcome))
    for report in extra:
        if report:
            print(report)
