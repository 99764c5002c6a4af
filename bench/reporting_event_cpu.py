"""CPU per event of reporting's projection, client and PostgreSQL backend, by batch size.

    PYTHONPATH=. .venv/bin/python bench/reporting_event_cpu.py [COMPLAINTS] [--batch N ...]

Records the generator's complaint histories (about five events each) into a fresh, migrated
PostgreSQL database per batch size, as the service's consumers would, and prints per event:
this process's CPU (time.process_time), the CPU of the PostgreSQL backend serving it
(utime+stime of /proc/<pg_backend_pid()>, so the database must run on this machine) and the wall
time. CPU time, not wall time, because the machine is shared.

`--batch 1` records one event per transaction (`handlers.record`); `--batch N` hands
`handlers.record_many` up to N events at a time, gathered per event type as reporting's batch
consumers gather them from their queues (one queue per event type). Default: 1, 20 and 50.

`--flow` records instead the events the full flow gives reporting per complaint (received,
routed, two `notification_sent`), all received today, interleaved as they arrive (the routing one
complaint behind, the notifications five behind), batches formed in arrival order as reporting's
one batch group (`all_events`) forms them; `--profile FILE` writes a cProfile (clock:
time.process_time) of the timed recording to FILE.

`--service` measures the reporting service itself instead (`nameko run` of the tree on
PYTHONPATH, its own vhost and database): once it answers /health, the events are published to
its queues at once (a backlog, as at maximum load) and it runs until every event is stored;
printed per event: the service process's CPU (/proc), the CPU of its PostgreSQL backends and
the wall time, and the batches' mean size (/metrics). `--rate R` publishes R events per second
instead of a backlog (the batches the flow's pace gives). `--batch N` sets
REPORTING_EVENT_BATCH_MAX_SIZE (revisions without batch consumers ignore it); `--wait MS` sets
REPORTING_EVENT_BATCH_MAX_WAIT_MS.

It uses only the public API, so it measures an older revision too (one without
`record_many`: batch 1 only):

    git archive <rev> | tar -x -C /tmp/dumas_rev
    PYTHONPATH=/tmp/dumas_rev .venv/bin/python bench/reporting_event_cpu.py --batch 1
    PYTHONPATH=/tmp/dumas_rev .venv/bin/python bench/reporting_event_cpu.py --service --batch 1
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from kombu import Connection, Exchange
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

import services
from bench.infra import Databases, Vhost, proc_sample, wait_until
from services.cli import SERVICES_DIR
from services.reporting import handlers
from services.reporting.domain.generator import stories
from shared.contracts import build_event, load_event
from shared.db import UnitOfWork, make_engine
from shared.messaging import consumer_queue
from shared.migrate import upgrade


def queue_batches(events, size: int) -> list[list]:
    """The batches per-event-type queues would hand over under load: each type's events in
    arrival order, `size` at a time, a type's batch leaving as soon as it is full."""
    pending: dict[str, list] = {}
    out = []
    for event in events:
        batch = pending.setdefault(event.event_type, [])
        batch.append(event)
        if len(batch) >= size:
            out.append(batch)
            pending[event.event_type] = []
    out.extend(batch for batch in pending.values() if batch)
    return out


def flow_events(complaints: int) -> list[dict]:
    """The envelopes the full flow sends reporting: per complaint received, routed and two
    notification_sent (unit and complainant), received today, in the order they arrive."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    per_complaint = []
    for i, story in enumerate(stories(complaints, seed=11, start=date(2026, 1, 5), days=365)):
        at = now + timedelta(seconds=i)
        received = {**story[0][1], "received_at": at}
        routed = next(d for t, d in story if t == "complaint_routed")
        routed = {**routed, "routed_at": at + timedelta(seconds=1)}
        sent = next(d for t, d in story if t == "notification_sent")
        sent = {**sent, "sent_at": at + timedelta(seconds=2)}
        per_complaint.append([
            ("complaint_received", received), ("complaint_routed", routed),
            ("notification_sent", sent),
            ("notification_sent", {**sent, "delivery_id": f"{sent['delivery_id']}-c",
                                   "audience": "complainant"})])
    order = []
    for i in range(complaints + 5):
        if i < complaints:
            order.append(per_complaint[i][0])
        if 0 <= i - 1 < complaints:
            order.append(per_complaint[i - 1][1])
        if 0 <= i - 5 < complaints:
            order.extend(per_complaint[i - 5][2:])
    return [build_event(t, d, correlation_id=str(d["complaint_id"])) for t, d in order]


def group_batches(events, size: int) -> list[list]:
    """The batches one batch group forms under load: arrival order, `size` at a time."""
    return [events[i:i + size] for i in range(0, len(events), size)]


def measure(dbs: Databases, events: list, batch: int, flow: bool = False,
            profile: str | None = None) -> dict:
    url = dbs.create(f"reporting_cpu_b{batch}")
    engine = None
    try:
        upgrade(SERVICES_DIR / "reporting" / "migrations", url)
        engine = make_engine(url, pool_size=1, max_overflow=0)
        factory = sessionmaker(engine, expire_on_commit=False)

        def uow():
            return UnitOfWork(factory, None, None)

        def record(chunk):
            if batch == 1:
                for event in chunk:
                    handlers.record(uow, event)
            else:
                handlers.record_many(uow, chunk)

        warm, rest = events[:200], events[200:]
        batches = group_batches if flow else queue_batches
        for chunk in batches(warm, batch):  # statement caches, connection, first pages
            record(chunk)
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()

        def backend_cpu() -> float:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        chunks = batches(rest, batch)
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)
        b0, c0, w0 = backend_cpu(), time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for chunk in chunks:
            record(chunk)
        if profiler is not None:
            profiler.disable()
        c1, w1, b1 = time.process_time(), time.perf_counter(), backend_cpu()
        if profiler is not None:
            profiler.dump_stats(f"{profile}.b{batch}")
        n = len(rest)
        return {"batch": batch, "events": n, "transactions": len(chunks) if batch > 1 else n,
                "client_cpu_ms": round(1000 * (c1 - c0) / n, 3),
                "backend_cpu_ms": round(1000 * (b1 - b0) / n, 3),
                "wall_ms": round(1000 * (w1 - w0) / n, 3)}
    finally:
        if engine is not None:
            engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backends_cpu(engine, database: str) -> dict[int, float]:
    with engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d"),
                            {"d": database}).scalars().all()
    out = {}
    for pid in pids:
        sample = proc_sample(pid)
        if sample:
            out[pid] = sample.cpu_seconds
    return out


def _batch_sizes(port: int) -> dict:
    """Batches and events per batch, all queues together, from the service's /metrics."""
    import requests

    count = total = 0.0
    for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
        if line.startswith("dumas_event_batch_size_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("dumas_event_batch_size_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return {"batches": int(count), "mean_batch": round(total / count, 2) if count else None}


def measure_service(envelopes: list[dict], batch: int, rate: float | None = None,
                    wait_ms: float | None = None) -> dict:
    """The reporting service (nameko run) consuming `envelopes`: a backlog published at once,
    or `rate` events per second."""
    from services.reporting.domain.projection import HANDLED_EVENTS

    root = Path(services.__file__).resolve().parents[1]  # the tree being measured
    dbs, vhost, proc, log = Databases(), Vhost(), None, None
    work = tempfile.mkdtemp(prefix="reporting_event_cpu_")
    try:
        url = dbs.create(f"reporting_svc_b{batch}")
        upgrade(SERVICES_DIR / "reporting" / "migrations", url)
        with Connection(vhost.uri) as conn:
            for producer, event_type in HANDLED_EVENTS:  # the service's queues, before it runs
                consumer_queue("reporting", producer, event_type)(conn.default_channel).declare()
        port = _free_port()
        env = {**os.environ, "AMQP_URI": vhost.uri, "REPORTING_DATABASE_URL": url,
               "REPORTING_HTTP_ADDRESS": f"127.0.0.1:{port}", "LOG_LEVEL": "WARNING",
               "REPORTING_EVENT_BATCH_MAX_SIZE": str(batch), "EVENTLET_TESTS": "1",
               **({"REPORTING_EVENT_BATCH_MAX_WAIT_MS": str(wait_ms)} if wait_ms else {}),
               "DUMAS_VAR_DIR": work, "PYTHONPATH": str(root)}
        log = open(Path(work) / "reporting.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(  # noqa: S603 - our own venv's nameko
            [str(Path(sys.executable).parent / "nameko"), "run", "--config",
             "services/reporting/config.yaml", "services.reporting.service"],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import requests

        def healthy():
            try:
                return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok, None
            except requests.RequestException:
                return proc.poll() is not None, None  # exited: stop waiting

        if not wait_until(healthy, 60)[0] or proc.poll() is not None:
            raise RuntimeError(f"reporting did not start; see {log.name}")
        admin = dbs._admin
        database = url.rsplit("/", 1)[-1]
        backends0, cpu0, w0 = _backends_cpu(admin, database), proc_sample(proc.pid).cpu_seconds, \
            time.perf_counter()
        with Connection(vhost.uri, transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer()
            for i, envelope in enumerate(envelopes):
                if rate:  # pacing the load generator, not waiting for the service
                    time.sleep(max(0.0, w0 + i / rate - time.perf_counter()))
                producer.publish(json.dumps(envelope), exchange=Exchange(
                    f"{envelope['producer']}.events", type="topic", durable=True),
                    routing_key=envelope["event_type"], content_type="application/json",
                    content_encoding="utf-8", delivery_mode=2)
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            def stored():
                with engine.connect() as conn:
                    n = conn.execute(text("SELECT count(*) FROM events")).scalar()
                return n >= len(envelopes), n

            done, n = wait_until(stored, 600)
            if not done:
                raise RuntimeError(f"only {n} of {len(envelopes)} events stored; see {log.name}")
        finally:
            engine.dispose()
        w1, cpu1 = time.perf_counter(), proc_sample(proc.pid).cpu_seconds
        backends1 = _backends_cpu(admin, database)
        n = len(envelopes)
        backend = sum(v - backends0.get(pid, 0.0) for pid, v in backends1.items())
        return {"service": True, "batch": batch, "rate": rate, "wait_ms": wait_ms, "events": n,
                **_batch_sizes(port),
                "service_cpu_ms": round(1000 * (cpu1 - cpu0) / n, 3),
                "backend_cpu_ms": round(1000 * backend / n, 3),
                "wall_ms": round(1000 * (w1 - w0) / n, 3)}
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if log is not None:
            log.close()
        vhost.close()
        dbs.close()


def main(complaints: int = 300, batches=(1, 20, 50), service: bool = False,
         rate: float | None = None, wait_ms: float | None = None, flow: bool = False,
         profile: str | None = None) -> list[dict]:
    if flow:
        envelopes = flow_events(complaints)
    else:
        envelopes = [build_event(t, d, correlation_id=str(d["complaint_id"]))
                     for story in stories(complaints, seed=11, start=date(2026, 1, 5), days=365)
                     for t, d in story]
    if service:
        return [measure_service(envelopes, b, rate, wait_ms) for b in batches]
    events = [load_event(e) for e in envelopes]
    dbs = Databases()
    try:
        return [measure(dbs, events, b, flow, profile) for b in batches]
    finally:
        dbs.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("complaints", nargs="?", type=int, default=300)
    parser.add_argument("--batch", type=int, action="append",
                        help="events per transaction (repeatable; default 1, 20, 50)")
    parser.add_argument("--service", action="store_true",
                        help="measure the reporting service process on a backlog")
    parser.add_argument("--rate", type=float,
                        help="with --service: publish this many events per second instead")
    parser.add_argument("--wait", type=float, help="with --service: max wait of a batch, ms")
    parser.add_argument("--flow", action="store_true",
                        help="the full flow's four events per complaint, batched as one group")
    parser.add_argument("--profile", help="cProfile of the timed recording to FILE.b<batch>")
    args = parser.parse_args()
    for row in main(args.complaints, tuple(args.batch or (1, 20, 50)), args.service, args.rate,
                    args.wait, args.flow, args.profile):
        print(row)
