"""CPU per complaint of notification: complaint_routed -> the unit's and the complainant's
deliveries sent (files written, rows `sent`, notification_sent events published).

    PYTHONPATH=. .venv/bin/python bench/notification_cpu.py [--complaints 400] [--rate 25]
        [--tree DIR] [--profile FILE] [--phases backlog,paced|none] [--idle-seconds 4]
        [--lease-plan PENDING]

The service runs exactly as `make bench` runs it (`nameko run --config
services/notification/config.yaml services.notification.service`: file provider, unit channel
e-mail, 20 workers, 20 send slots, INFO logging) against a fresh, migrated PostgreSQL database
and a private RabbitMQ vhost. intake's `get_contacts` and routing's `get_unit_contacts` are
answered by stand-ins in another process, and this process publishes the complaint_routed
events (as routing's relay does) and watches the database, so neither counts as notification's
CPU. Each complainant left an e-mail address, as the benchmark's complainants do.

Two phases: a backlog (every event published at once; the service drains it as fast as it
can) and an open-loop phase at `--rate` events/s (below saturation: the cleanest CPU figure,
and the latency complaint_routed published -> the unit's delivery `sent_at`, when its
provider accepted it, and -> its notification_sent staged, when it was marked sent; with the
mean batch sizes of the "mark sent" transactions, get_contacts calls and relay batches). CPU
figures are utime+stime of the service process (/proc/<pid>/stat) and of the PostgreSQL
backends serving its database (pg_stat_activity -> /proc), net of the idle CPU measured for
4 s (`--idle-seconds`) before the load (timers, outbox polls), which is reported too
(`--phases none`: only that). CPU time, not wall time, because the machine is shared.

`--handlers` measures notification's own code only, in this process without nameko or a broker:
`handlers.plan` and `handlers.send_leased` for each event (file provider, the address given),
with the statements and commits per complaint counted.

`--lease-plan N` measures the drainer's lease alone (handlers.lease_due, 10 rows) at N pending
complainant deliveries queued behind 5 units', on a fresh table never analyzed: its plan, shared
buffers and server time (EXPLAIN ANALYZE of the statement as lease_due sends it); run it with
`PYTHONPATH=/tmp/rev` for the other copy of the code.

`--tree DIR` runs the service from another copy of the code (e.g. `git archive HEAD | tar -x -C
/tmp/rev`) with this same script, for interleaved before/after runs. `--profile FILE` runs the
service under cProfile with time.process_time as its clock (pstats file written at stop; the
start-up and warm-up are cleared from it, SIGUSR1, when the idle measurement starts).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
UNIT = "kua-merigi"


# ------------------------------------------------------------------- roles in other processes


def run_service(profile: str | None) -> None:
    """The notification service, as `nameko run` runs it (optionally under cProfile)."""
    import eventlet

    eventlet.monkey_patch()
    import cProfile

    from nameko.cli.main import main as nameko_main

    sys.argv = ["nameko", "run", "--config", "services/notification/config.yaml",
                "services.notification.service"]
    prof = cProfile.Profile(time.process_time) if profile else None
    if prof:
        # SIGUSR1: forget what was profiled so far (the start-up), so that the file shows the
        # idle period and the phases only.
        signal.signal(signal.SIGUSR1, lambda *_: prof.clear())
        prof.enable()
    try:
        nameko_main()
    finally:
        if prof:
            prof.disable()
            prof.dump_stats(profile)


def run_standins() -> None:
    """intake's get_contact(s) and routing's get_unit_contacts, answered from memory."""
    import eventlet

    eventlet.monkey_patch()
    from nameko.rpc import rpc
    from nameko.runners import ServiceRunner

    class Intake:
        name = "intake"

        @rpc
        def get_contact(self, complaint_id):
            return {"name": "Warga Uji", "email": f"warga.{complaint_id[:8]}@example.com",
                    "phone": None, "channel": "web"}

        @rpc
        def get_contacts(self, complaint_ids):
            return {c: self.get_contact(c) for c in complaint_ids}

    class Routing:
        name = "routing"

        @rpc
        def get_unit_contacts(self, unit_code):
            return {"code": unit_code, "name": "KUA Kecamatan Merigi",
                    "email": f"{unit_code}@kemenag.example", "whatsapp": "+6281100000003",
                    "head": None}

    runner = ServiceRunner({"AMQP_URI": os.environ["AMQP_URI"], "serializer": "json"})
    runner.add_service(Intake)
    runner.add_service(Routing)
    signal.signal(signal.SIGTERM, lambda *_: eventlet.spawn_n(runner.stop))
    runner.start()
    print("ready", flush=True)
    runner.wait()


# ------------------------------------------------------------------------------ measuring


def handlers_only(complaints: int, profile: str | None) -> dict:
    """Client CPU of plan + send_leased per complaint_routed, statements and commits."""
    import cProfile

    from sqlalchemy import event as sa_event
    from sqlalchemy.orm import sessionmaker

    from bench.infra import Databases
    from services.cli import SERVICES_DIR
    from services.notification import handlers
    from services.notification.db import outbox, processed_events
    from services.notification.domain.render import TemplateCatalogue
    from services.notification.settings import Settings
    from shared.contracts import load_event
    from shared.db import UnitOfWork, make_engine
    from shared.migrate import upgrade

    dbs, engine = Databases(), None
    try:
        url = dbs.create("notification_handlers")
        upgrade(SERVICES_DIR / "notification" / "migrations", url)
        engine = make_engine(url, pool_size=1, max_overflow=0)
        counts = {"statements": 0, "commits": 0}

        def count(what):
            return lambda *_: counts.__setitem__(what, counts[what] + 1)

        sa_event.listen(engine, "before_cursor_execute", count("statements"))
        sa_event.listen(engine, "commit", count("commits"))
        factory = sessionmaker(engine, expire_on_commit=False)

        def uow():
            return UnitOfWork(factory, outbox, processed_events)

        settings = Settings.from_config({"DUMAS_VAR_DIR": tempfile.mkdtemp(prefix="notifcpu-"),
                                         "PUBLIC_BASE_URL": "http://127.0.0.1:8001"})
        providers = settings.build_providers()
        catalogue = TemplateCatalogue()

        class Slots:
            def reserve(self, wanted):
                return wanted

            def release(self, count):
                pass

        def one(event):
            for row in handlers.plan(uow, event, settings, slots=Slots()).leased:
                handlers.send_leased(
                    uow, row, resolve_address=lambda _d: "warga@example.com",
                    catalogue=catalogue, settings=settings,
                    provider_for=lambda a, c: providers[settings.routes[(a, c)]])

        events = [load_event(json.loads(json.dumps(routed_event(i), default=str)))
                  for i in range(complaints + 50)]
        for e in events[:50]:  # warm up
            one(e)
        events = events[50:]
        counts.update(statements=0, commits=0)
        prof = cProfile.Profile(time.process_time) if profile else None
        c0 = time.process_time()
        if prof:
            prof.enable()
        for e in events:
            one(e)
        if prof:
            prof.disable()
            prof.dump_stats(profile)
        n = len(events)
        return {"complaints": n, "client_cpu_ms": round(1000 * (time.process_time() - c0) / n, 2),
                "statements": counts["statements"] / n, "commits": counts["commits"] / n}
    finally:
        if engine is not None:
            engine.dispose()
        dbs.close()


def lease_plan(pending: int, units: int, limit: int = 10, runs: int = 20) -> dict:
    """The drainer's lease (handlers.lease_due) at a queue of `pending` complainant deliveries
    due behind `units` units' ones, on a table never analyzed (a fresh database): its plan,
    buffers and server time (EXPLAIN ANALYZE, BUFFERS of the statement exactly as lease_due sends
    it, seen on a lease of nothing; each run rolled back). First run and median of `runs`."""
    from sqlalchemy import event as sa_event
    from sqlalchemy import insert
    from sqlalchemy.orm import sessionmaker

    from bench.infra import Databases
    from services.cli import SERVICES_DIR
    from services.notification import handlers
    from services.notification.db import deliveries, outbox, processed_events
    from shared.db import UnitOfWork, make_engine, utcnow
    from shared.migrate import upgrade

    dbs, engine = Databases(), None
    try:
        url = dbs.create("notification_lease")
        upgrade(SERVICES_DIR / "notification" / "migrations", url)
        engine = make_engine(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE deliveries SET (autovacuum_enabled = off)")
            now = utcnow()
            conn.execute(insert(deliveries), [{
                "id": str(uuid.uuid4()), "cause_event_id": str(uuid.uuid4()),
                "complaint_id": str(uuid.uuid4()), "audience": audience, "recipient": UNIT,
                "channel": "email", "template": "complaint_routed",
                "context": {"tracking_code": "DMS-7Q4K-2P9M", "unit_name": "KUA Merigi"},
                "status": "pending", "attempts": 0, "created_at": now,
                "next_attempt_at": now - timedelta(minutes=10) + timedelta(milliseconds=i),
            } for audience, count in (("complainant", pending), ("unit", units))
                for i in range(count)])
        sent = []

        def seen(_conn, _cursor, sql, params, *_):
            sent.append((sql, params))

        sa_event.listen(engine, "before_cursor_execute", seen)
        handlers.lease_due(lambda: UnitOfWork(factory, outbox, processed_events), 0,
                           timedelta(minutes=5))
        sa_event.remove(engine, "before_cursor_execute", seen)
        [(sql, params)] = [(q, p) for q, p in sent if "UPDATE deliveries" in q]
        head, sep, tail = sql.partition("WITH due")
        explain = head + "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sep + tail
        plans = []
        with engine.connect() as conn:
            for _ in range(runs):
                plans.append(conn.exec_driver_sql(explain, {**params, "b_limit": limit}
                                                  ).scalar()[0])
                conn.rollback()

        def nodes(plan):
            yield plan
            for child in plan.get("Plans", ()):
                yield from nodes(child)

        def figures(plan):
            top = plan["Plan"]
            due = [n for n in nodes(top) if n.get("Subplan Name") == "CTE due"]
            return {"buffers": top["Shared Hit Blocks"] + top["Shared Read Blocks"],
                    "due_buffers": (due[0]["Shared Hit Blocks"] + due[0]["Shared Read Blocks"]
                                    if due else None),
                    "server_ms": round(plan["Planning Time"] + plan["Execution Time"], 3)}

        rest = [figures(p) for p in plans[1:]]
        return {
            "pending_complainants": pending, "units": units, "limit": limit,
            "scans": [(n["Node Type"], n.get("Index Name")) for n in nodes(plans[0]["Plan"])
                      if "Scan" in n["Node Type"] or n["Node Type"] == "Sort"],
            "first": figures(plans[0]),
            "median": {k: statistics.median(r[k] for r in rest) for k in ("buffers",
                                                                          "server_ms")},
        }
    finally:
        if engine is not None:
            engine.dispose()
        dbs.close()


def proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Cpu:
    """CPU seconds of the service process and of its database's backends (not ours)."""

    def __init__(self, conn, pid: int):
        self.conn = conn
        self.pid = pid

    def read(self) -> tuple[float, dict[int, float]]:
        from sqlalchemy import text

        pids = self.conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalars().all()
        return proc_cpu(self.pid), {p: proc_cpu(p) for p in pids}

    @staticmethod
    def delta(a, b) -> tuple[float, float]:
        service = b[0] - a[0]
        backends = sum(v - a[1].get(p, 0.0) for p, v in b[1].items())
        return service, backends


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def routed_event(seq_no: int, contact: bool = True) -> dict:
    from shared.contracts import build_event

    now = datetime.now(UTC)
    complaint_id = str(uuid.uuid4())
    data = {
        "complaint_id": complaint_id,
        "tracking_code": f"DMS-{uuid.uuid4().hex[:4].upper()}-{seq_no:04d}",
        "unit_code": UNIT, "unit_name": "KUA Kecamatan Merigi", "unit_type": "kua",
        "stage": "live", "rule": "kua_by_kecamatan",
        "reason": "Kategori nikah_rujuk di kecamatan asal", "category": "nikah_rujuk",
        "channel": "web", "confidentiality": "public",
        "contact_channels": ["email"] if contact else [],
        "summary": "Pendaftaran nikah sudah dua minggu belum diproses.",
        "routed_at": now, "due_at": now + timedelta(days=14), "status": "routed", "seq": 1,
    }
    return build_event("complaint_routed", data, correlation_id=complaint_id)


def paced_latency(conn, published_at: dict) -> dict:
    """complaint_routed published -> the unit's delivery `sent_at` (the provider accepted it),
    and -> its notification_sent staged (the "mark sent" transaction), p50/p95/p99 in ms."""
    from sqlalchemy import text

    ids = list(published_at)
    sent = conn.execute(text(
        "SELECT complaint_id, sent_at FROM deliveries "
        "WHERE audience = 'unit' AND complaint_id = ANY(:ids)"), {"ids": ids}).all()
    marked = conn.execute(text(
        "SELECT correlation_id AS complaint_id, created_at AS at FROM outbox "
        "WHERE routing_key = 'notification_sent' AND correlation_id = ANY(:ids) "
        "AND body::json -> 'data' ->> 'audience' = 'unit'"), {"ids": ids}).all()

    def quantiles(pairs) -> dict:
        lat = sorted((at - published_at[cid]).total_seconds() * 1000 for cid, at in pairs)
        q = statistics.quantiles(lat, n=100)
        return {"p50": round(q[49], 1), "p95": round(q[94], 1), "p99": round(q[98], 1)}

    return {"routed_to_unit_sent_ms": quantiles(sent),
            "routed_to_unit_marked_ms": quantiles(marked)}


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=("bench", "service", "standins"), default="bench")
    parser.add_argument("--complaints", type=int, default=400)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--tree", default=str(ROOT))
    parser.add_argument("--profile", default=None)
    parser.add_argument("--handlers", action="store_true",
                        help="plan + send in this process only (no nameko, no broker)")
    parser.add_argument("--no-contact", action="store_true",
                        help="complainants left no contact: the unit's delivery only")
    parser.add_argument("--phases", default="backlog,paced",
                        help="which of backlog,paced to run (none: the idle figure only)")
    parser.add_argument("--idle-seconds", type=float, default=4.0,
                        help="how long the idle CPU (no load, after the warm-up) is measured")
    parser.add_argument("--lease-plan", type=int, default=0, metavar="PENDING",
                        help="the drainer's lease at PENDING complainant deliveries queued "
                             "behind 5 units': plan, buffers, server time (no service)")
    args = parser.parse_args()
    if args.lease_plan:
        return lease_plan(args.lease_plan, units=5)
    if args.role == "service":
        run_service(args.profile)
        return {}
    if args.role == "standins":
        run_standins()
        return {}
    if args.handlers:
        return handlers_only(args.complaints, args.profile)

    import requests
    from kombu import Connection, Exchange, Producer
    from sqlalchemy import create_engine, text

    from bench.infra import Databases, Vhost
    from services.cli import SERVICES_DIR
    from shared.migrate import upgrade
    from shared.outbox import declare_subscriber_queues

    dbs, vhost, procs, engine = Databases(), Vhost("dumas_notifcpu"), [], None
    var_dir = Path(tempfile.mkdtemp(prefix="notifcpu-"))
    try:
        url = dbs.create("notification_cpu")
        upgrade(SERVICES_DIR / "notification" / "migrations", url)
        port = free_port()
        env = dict(os.environ, AMQP_URI=vhost.uri, NOTIFICATION_DATABASE_URL=url,
                   NOTIFICATION_HTTP_ADDRESS=f"127.0.0.1:{port}", DUMAS_VAR_DIR=str(var_dir),
                   PUBLIC_BASE_URL="http://127.0.0.1:8001", PYTHONPATH=args.tree,
                   EVENTLET_TESTS="1", PYTHONUNBUFFERED="1")
        me = str(Path(__file__).resolve())
        standins = subprocess.Popen(  # noqa: S603
            [sys.executable, me, "--role", "standins"], cwd=args.tree, env=env,
            stdout=subprocess.PIPE, stderr=(var_dir / "standins.log").open("w"))
        procs.append(standins)
        assert standins.stdout.readline().strip() == b"ready", "stand-ins did not start"
        service_cmd = [sys.executable, me, "--role", "service"]
        if args.profile:
            service_cmd += ["--profile", str(Path(args.profile).resolve())]
        service = subprocess.Popen(  # noqa: S603
            service_cmd, cwd=args.tree, env=env, stdout=subprocess.DEVNULL,
            stderr=(var_dir / "service.log").open("w"))
        procs.append(service)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError(f"service did not start; see {var_dir}/service.log")
            time.sleep(0.2)

        engine = create_engine(url, pool_size=1, max_overflow=0)
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        cpu = Cpu(conn, service.pid)
        amqp = Connection(vhost.uri, transport_options={"confirm_publish": True})
        producer = Producer(amqp.channel())
        exchange = Exchange("routing.events", type="topic", durable=True)
        exchange(producer.channel).declare()
        declare_subscriber_queues(producer.channel, "routing.events")

        def publish(envelope: dict) -> None:
            producer.publish(json.dumps(envelope, default=str), exchange="routing.events",
                             routing_key="complaint_routed", content_type="application/json",
                             content_encoding="utf-8", delivery_mode=2,
                             message_id=envelope["event_id"],
                             correlation_id=envelope["correlation_id"], retry=False)

        def done() -> tuple[int, int]:
            sent = conn.execute(text(
                "SELECT count(*) FROM deliveries WHERE status = 'sent'")).scalar()
            unpublished = conn.execute(text(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar()
            return sent, unpublished

        def wait_for(total_sent: int, timeout: float = 300) -> None:
            end = time.monotonic() + timeout
            while True:
                sent, unpublished = done()
                if sent >= total_sent and unpublished == 0:
                    return
                if time.monotonic() > end:
                    raise RuntimeError(f"only {sent}/{total_sent} sent, {unpublished} unpublished")
                time.sleep(0.1)

        per_complaint = 1 if args.no_contact else 2
        # Warm up (first connections, templates, statement caches), then idle CPU.
        warm = 20
        for i in range(warm):
            publish(routed_event(i))
        wait_for(2 * warm)
        time.sleep(1)
        if args.profile:
            service.send_signal(signal.SIGUSR1)
        a = cpu.read()
        t = time.monotonic()
        time.sleep(args.idle_seconds)
        idle_s, idle_b = Cpu.delta(a, cpu.read())
        idle_s, idle_b = idle_s / (time.monotonic() - t), idle_b / (time.monotonic() - t)
        total = 2 * warm

        published_at: dict[str, datetime] = {}

        def batches() -> dict[str, tuple[float, float]]:
            """(count, sum) of the service's batch-size histograms (absent in older trees)."""
            found = {}
            text_ = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            for name in ("dumas_notification_mark_sent_batch_size",
                         "dumas_notification_contacts_per_rpc", "dumas_outbox_batch_size"):
                # (labelled: the relay's is {service="notification"}, the only one here)
                values = [float(line.rsplit(" ", 1)[1]) for line in text_.splitlines()
                          if line.startswith((f"{name}_count ", f"{name}_sum ",
                                              f"{name}_count{{", f"{name}_sum{{"))]
                if len(values) == 2:
                    found[name] = (values[0], values[1])
            return found

        def phase(n: int, paced: float | None) -> dict:
            nonlocal total
            events = [routed_event(i, not args.no_contact) for i in range(n)]
            before = batches()
            a, t0 = cpu.read(), time.monotonic()
            for i, e in enumerate(events):
                if paced:
                    delay = t0 + i / paced - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                published_at[e["data"]["complaint_id"]] = datetime.now(UTC)
                publish(e)
            total += per_complaint * n
            wait_for(total)
            elapsed = time.monotonic() - t0
            s, b = Cpu.delta(a, cpu.read())
            s_net, b_net = s - idle_s * elapsed, b - idle_b * elapsed
            result = {"complaints": n, "seconds": round(elapsed, 2),
                      "service_cpu_ms": round(1000 * s_net / n, 2),
                      "db_backend_cpu_ms": round(1000 * b_net / n, 2),
                      "total_cpu_ms": round(1000 * (s_net + b_net) / n, 2)}
            # mean deliveries per "mark sent" transaction, contacts per get_contacts call
            for name, (count, total_) in batches().items():
                count0, total0 = before.get(name, (0.0, 0.0))
                if count > count0:
                    result[f"{name}_mean"] = round((total_ - total0) / (count - count0), 2)
            return result

        results = {"tree": args.tree, "idle_cpu_ms_per_s": round(1000 * idle_s, 1),
                   "idle_db_backend_cpu_ms_per_s": round(1000 * idle_b, 1)}
        phases = args.phases.split(",")
        if "backlog" in phases:
            results["backlog"] = phase(args.complaints, None)
            results["backlog"]["per_s"] = round(
                args.complaints / results["backlog"]["seconds"], 1)
        if "paced" in phases:
            published_at.clear()
            results["paced"] = phase(int(args.rate * args.seconds), args.rate)
            results["paced"].update(paced_latency(conn, published_at))
        amqp.release()
        conn.close()
        return results
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        if engine is not None:
            engine.dispose()
        vhost.close()
        dbs.close()


if __name__ == "__main__":
    result = main()
    if result:
        print(json.dumps(result, indent=1))
