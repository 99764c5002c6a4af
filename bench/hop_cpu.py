"""CPU per complaint of intake's and routing's hops, client and PostgreSQL backend (issue 8).

    PYTHONPATH=. .venv/bin/python bench/hop_cpu.py [--complaints N] [--profile PHASE]

In one process, against fresh migrated PostgreSQL databases (intake, routing with its seeded
unit registry) and a private RabbitMQ vhost, each complaint goes through the code the services
run for it, phase by phase:

- ``intake.submit``: `IntakeService.submit` (the `POST /api/v1/complaints` handler with its
  `endpoint` wrapper) on a werkzeug request with a JSON body like `make bench`'s (a different
  citizen and address each time: rate limit and duplicate check run as in production);
- ``intake.relay``: intake's outbox relay publishes the complaint's events to the vhost with
  publisher confirms (one batch per complaint, as at a low load when every commit wakes it;
  ``--batch N``: every N complaints, as under load);
- ``routing.received``: routing's `complaint_received` consumer body: `load_event` of the body
  intake published, then `handlers.route_complaints` (the batched consumer: claim, decision,
  complaint, audit, outbox and attachment references of every event in one transaction; with
  ``--batch N``, N events at a time) or, in a revision without it, `handlers.route_complaint`
  and `attachments.on_received` per event;
- ``routing.relay``: routing's outbox relay publishes `complaint_routed`;
- ``intake.routed``: intake's `complaint_routed` consumer body (`load_event`, then
  `handlers.apply_status_events` for the batch, or `apply_status_event` per event in a
  revision without it);
- ``intake.get_contact``: the `get_contact` RPC body notification calls for the complainant.

Per phase and complaint: this process's CPU (time.process_time), the CPU of the PostgreSQL
backends serving that database (utime+stime of /proc/<pid> of every backend connected to it, so
the database must run on this machine) and wall time. CPU time, not wall time: the machine is
shared. nameko's own work around a handler (eventlet's WSGI server, the AMQP consumer, acks,
the RPC reply) is not included; it is the same before and after a change to the handlers.

``--profile intake.submit`` (or any phase) runs cProfile with time.process_time as its clock
around that phase and prints the top functions. The script uses only the services' public API,
so it measures an older revision as well:

    git archive <rev> | tar -x -C /tmp/dumas_rev
    PYTHONPATH=/tmp/dumas_rev .venv/bin/python bench/hop_cpu.py   # from this tree
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
import uuid
from types import SimpleNamespace

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select, text
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from bench.infra import PG_SERVER, Databases, Vhost
from services.cli import SERVICES_DIR
from shared.contracts import load_event
from shared.migrate import upgrade

PHASES = ("intake.submit", "intake.relay", "routing.received", "routing.relay",
          "intake.routed", "intake.get_contact")
KECAMATAN = ("17.08.01", "17.08.02", "17.08.03", "17.08.04", "17.08.05", "17.08.06")
DESCRIPTION = ("Pendaftaran nikah di KUA sudah dua minggu belum diproses, padahal berkas sudah "
               "lengkap dan sudah diserahkan ke petugas.")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _provider(metadata, config, service):
    """The service's Database dependency, set up as its container would (no container)."""
    from shared.nameko_ext import Database, DatabaseAccess

    provider = Database(metadata)
    provider.container = SimpleNamespace(config=config, service_name=service)
    provider.setup()
    return provider, DatabaseAccess(provider)


class BackendCpu:
    """CPU seconds of every PostgreSQL backend connected to one database: the scheduler's run
    time of each (/proc/<pid>/schedstat, nanoseconds; utime+stime in clock ticks where it is
    missing). Ticks are 10 ms, coarser than a phase's whole share of a run (session 5)."""

    def __init__(self, admin, database: str):
        self.admin = admin
        self.database = database

    def __call__(self) -> float:
        with self.admin.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.database}
            ).scalars().all()
        total = 0.0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/schedstat") as fh:
                    total += int(fh.read().split()[0]) / 1e9
                continue
            except (OSError, ValueError, IndexError):
                pass
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total


def _request(i: int, run: str) -> Request:
    body = {
        "category": "nikah_rujuk",
        "kecamatan_code": KECAMATAN[i % len(KECAMATAN)],
        "description": f"{DESCRIPTION} Nomor berkas {run}-{i}.",
        "complainant": {"name": "Warga Uji", "email": f"warga.{run}.{i}@example.com"},
    }
    builder = EnvironBuilder(
        path="/api/v1/complaints", method="POST", data=json.dumps(body),
        content_type="application/json",
        headers={"X-Forwarded-For": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"},
    )
    try:
        return Request(builder.get_environ())
    finally:
        builder.close()


def _unpublished_bodies(engine, table, after_id: int) -> tuple[list[str], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.id, table.c.body).where(table.c.id > after_id).order_by(table.c.id)
        ).all()
    return [r.body for r in rows], (rows[-1].id if rows else after_id)


def main(complaints: int = 300, warm: int = 60, profile: str | None = None,
         batch: int = 1) -> dict:
    from services.intake.db import metadata as intake_metadata
    from services.intake.service import IntakeService
    from services.routing import attachments as routing_attachments
    from services.routing import handlers as routing_handlers
    from services.routing import registry_store
    from services.routing.commands import seed_registry
    from services.routing.db import metadata as routing_metadata

    run = uuid.uuid4().hex[:6]
    vhost, dbs = Vhost("dumas_hopcpu"), Databases()
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", pool_size=1)
    providers = []
    var = tempfile.TemporaryDirectory(prefix="dumas_hopcpu_")
    try:
        intake_url, routing_url = dbs.create("hop_intake"), dbs.create("hop_routing")
        upgrade(SERVICES_DIR / "intake" / "migrations", intake_url)
        upgrade(SERVICES_DIR / "routing" / "migrations", routing_url)
        seed_registry(routing_url)
        common = {"AMQP_URI": vhost.uri, "DUMAS_VAR_DIR": var.name}
        intake_config = {**common, "DATABASE_URL": intake_url, "TRUST_PROXY": "1",
                         "PUBLIC_BASE_URL": "http://localhost:8001",
                         "INTAKE_DATA_KEY": Fernet.generate_key().decode()}
        intake_p, intake_db = _provider(intake_metadata, intake_config, "intake")
        routing_p, routing_db = _provider(routing_metadata, {**common,
                                                              "DATABASE_URL": routing_url},
                                          "routing")
        providers = [intake_p, routing_p]

        from services.intake.channels import ChannelTools

        intake = IntakeService()
        intake.db, intake.config = intake_db, intake_config
        intake.channels = ChannelTools(intake_config)
        with routing_p.sessionmaker() as session:
            registry = registry_store.load(session)

        intake_outbox = intake_metadata.tables["outbox"]
        routing_outbox = routing_metadata.tables["outbox"]
        state = {"intake_seen": 0, "routing_seen": 0}
        ids: list[str] = []

        # Each phase: (prepare, run). Only `run` is measured: building the request and reading
        # the event bodies (which the broker would deliver) is the bench's work, not a service's.
        def submit(request):
            response = intake.submit(request)
            response.get_data()
            assert response.status_code == 201, response.get_data(as_text=True)
            ids.append(json.loads(response.get_data())["tracking_code"])

        # The intake -> routing hop and the routing -> intake hop are the same three steps: the
        # producer's relay publishes, the bench reads what it published, the consumer handles it.
        def relay(provider):
            return lambda _arg: provider.relay.publish_batch()

        def published(provider, outbox, seen):
            def bodies(_i):
                found, state[seen] = _unpublished_bodies(provider.engine, outbox, state[seen])
                return found
            return bodies

        def consumer(event_type, batched, one_at_a_time, after=None):
            """The consumer body: `load_event` of each body, then the batched handler (one
            transaction for the batch) or, in a revision without it, one event at a time."""
            def consume(bodies):
                events = [load_event(body, expected_types=(event_type,)) for body in bodies]
                if batched is not None:
                    assert all(batched(events))
                else:
                    for event in events:
                        one_at_a_time(event)
                if after is not None:
                    after(events)
            return consume

        batched_routing = getattr(routing_handlers, "route_complaints", None)

        def route_one(event):  # before batching: one event, two units of work
            decision = routing_handlers.route_complaint(routing_db.unit_of_work, registry, event)
            assert decision is not None
            routing_attachments.on_received(routing_db.unit_of_work, event)

        routed_ids: list[str] = []
        from services.intake import handlers as intake_handlers

        apply_all = getattr(intake_handlers, "apply_status_events", None)

        def apply_one(event):
            assert intake_handlers.apply_status_event(intake_db.unit_of_work, event)

        routing_received = consumer(
            "complaint_received",
            batched_routing and (lambda events: batched_routing(routing_db.unit_of_work,
                                                                registry, events)),
            route_one)
        intake_routed = consumer(
            "complaint_routed",
            apply_all and (lambda events: apply_all(intake_db.unit_of_work, events)),
            apply_one,
            after=lambda events: routed_ids.extend(e.data["complaint_id"] for e in events))

        def get_contact(complaint_ids):
            for complaint_id in complaint_ids:
                contact = intake.get_contact(complaint_id)
                assert contact and contact["email"], contact

        def nothing(_i):
            return None

        steps = dict(zip(PHASES, (
            (lambda i: _request(i, run), submit),
            (nothing, relay(intake_p)),
            (published(intake_p, intake_outbox, "intake_seen"), routing_received),
            (nothing, relay(routing_p)),
            (published(routing_p, routing_outbox, "routing_seen"), intake_routed),
            (lambda _i: routed_ids[-batch:], get_contact),
        ), strict=True))
        cpu = {"intake": BackendCpu(admin, intake_url.rsplit("/", 1)[1]),
               "routing": BackendCpu(admin, routing_url.rsplit("/", 1)[1])}
        totals = {p: [0.0, 0.0, 0.0] for p in PHASES}  # client, backend, wall (seconds)
        profiler = cProfile.Profile(time.process_time) if profile else None

        for i in range(warm + complaints):
            measured = i >= warm
            for phase, (prepare, step) in steps.items():
                if phase != "intake.submit" and (i + 1) % batch:
                    continue  # the next hops take `batch` complaints at a time
                arg = prepare(i)
                backend = cpu[phase.split(".", 1)[0]]
                if measured:
                    b0, c0, w0 = backend(), time.process_time(), time.perf_counter()
                    if profiler is not None and phase == profile:
                        profiler.enable()
                step(arg)
                if measured:
                    if profiler is not None and phase == profile:
                        profiler.disable()
                    c1, w1, b1 = time.process_time(), time.perf_counter(), backend()
                    t = totals[phase]
                    t[0] += c1 - c0
                    t[1] += b1 - b0
                    t[2] += w1 - w0

        result = {"complaints": complaints, "batch": batch, "phases": {}}
        for phase, (client, backend, wall) in totals.items():
            result["phases"][phase] = {
                "client_cpu_ms": round(1000 * client / complaints, 3),
                "backend_cpu_ms": round(1000 * backend / complaints, 3),
                "wall_ms": round(1000 * wall / complaints, 3),
            }
        for service in ("intake", "routing"):
            client = sum(v["client_cpu_ms"] for k, v in result["phases"].items()
                         if k.startswith(service))
            backend = sum(v["backend_cpu_ms"] for k, v in result["phases"].items()
                          if k.startswith(service))
            result[service] = {"client_cpu_ms": round(client, 3),
                               "backend_cpu_ms": round(backend, 3)}
        if profiler is not None:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(35)
            stats.sort_stats("cumulative").print_stats(45)
            result["profile"] = out.getvalue()
        return result
    finally:
        for provider in providers:
            if provider.relay is not None:
                provider.relay._close()
            provider.engine.dispose()
        admin.dispose()
        dbs.close()
        vhost.close()
        var.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--complaints", type=int, default=300)
    parser.add_argument("--warm", type=int, default=60)
    parser.add_argument("--profile", choices=PHASES)
    parser.add_argument("--batch", type=int, default=1,
                        help="relays and consumers take this many complaints at a time")
    args = parser.parse_args()
    outcome = main(args.complaints, args.warm, args.profile, args.batch)
    report = outcome.pop("profile", None)
    print(json.dumps(outcome, indent=1))
    if report:
        print(report)
