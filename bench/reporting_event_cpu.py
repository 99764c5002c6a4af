"""CPU per event of reporting's projection (`handlers.record`), client and PostgreSQL backend.

    PYTHONPATH=. .venv/bin/python bench/reporting_event_cpu.py [COMPLAINTS]

Records the generator's complaint histories (about five events each) one by one into a fresh,
migrated PostgreSQL database, as the service's consumers would, and prints per event: this
process's CPU (time.process_time), the CPU of the PostgreSQL backend serving it (utime+stime of
/proc/<pg_backend_pid()>, so the database must run on this machine) and the wall time. CPU time,
not wall time, because the machine is shared. It uses only the public API, so it measures an
older revision too:

    git archive <rev> | tar -x -C /tmp/dumas_rev
    PYTHONPATH=/tmp/dumas_rev .venv/bin/python bench/reporting_event_cpu.py   # from this tree
"""

import os
import sys
import time
from datetime import date

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from bench.infra import Databases
from services.cli import SERVICES_DIR
from services.reporting import handlers
from services.reporting.domain.generator import stories
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, make_engine
from shared.migrate import upgrade


def main(complaints: int = 300) -> dict:
    dbs = Databases()
    url = dbs.create("reporting_cpu")
    engine = None
    try:
        upgrade(SERVICES_DIR / "reporting" / "migrations", url)
        engine = make_engine(url, pool_size=1, max_overflow=0)
        factory = sessionmaker(engine, expire_on_commit=False)

        def uow():
            return UnitOfWork(factory, None, None)

        events = [load_event(build_event(t, d, correlation_id=str(d["complaint_id"])))
                  for story in stories(complaints, seed=11, start=date(2026, 1, 5), days=365)
                  for t, d in story]
        warm, events = events[:200], events[200:]
        for event in warm:  # statement caches, connection, first pages
            handlers.record(uow, event)
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()

        def backend_cpu() -> float:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        b0, c0, w0 = backend_cpu(), time.process_time(), time.perf_counter()
        for event in events:
            handlers.record(uow, event)
        c1, w1, b1 = time.process_time(), time.perf_counter(), backend_cpu()
        n = len(events)
        return {"events": n, "client_cpu_ms": round(1000 * (c1 - c0) / n, 2),
                "backend_cpu_ms": round(1000 * (b1 - b0) / n, 2),
                "wall_ms": round(1000 * (w1 - w0) / n, 2)}
    finally:
        if engine is not None:
            engine.dispose()
        dbs.close()


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300))
