"""A/B of the shared machinery: this tree's OutboxRelay and UnitOfWork against a git revision's.

    .venv/bin/python -m bench.ab_machinery [--rev HEAD] [--events 1000] [--rounds 3]
    .venv/bin/python -m bench.ab_machinery --paced [--rates 25,50,100] [--seconds 8]
        [--gather 0,2,5] [--rounds 3]

Loads shared/outbox.py and shared/db.py of `--rev` (read with `git show`, nothing is checked
out) next to the current ones and runs them interleaved against one fresh PostgreSQL database
and a private vhost: the relay's drain rate (events/s, batches of 200) and one UnitOfWork
(claim + publish + commit) per iteration (per second, and client CPU per unit of work). The
drain is measured after the relay has connected and declared (one event published first): its
events per second, this process's CPU per event (time.process_time) and its PostgreSQL
backend's (/proc/<pid>/stat).

`--paced`: the relay as the services run it (its `run()` loop in a thread of its own, woken by
each commit) while this process commits one event per unit of work at each rate of `--rates`
(open loop; `--arrivals poisson`, the default, `even` or `pairs`) for `--seconds`; `--rev`'s
relay and this tree's with each relay gather time of `--gather` (ms) and each `--prepared`
(1: the claim PREPAREd, 0: sent as text), interleaved. Per event:
the relay thread's CPU (time.thread_time), the CPU of its PostgreSQL backend
(/proc/<pid>/stat), events per confirmed batch, and the latency commit -> a consumer on the
vhost received it (p50/p99).
"""

import argparse
import contextlib
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kombu import Connection, Exchange, Queue
from sqlalchemy import MetaData, event, func, select, text
from sqlalchemy.orm import sessionmaker

import shared.db as new_db
import shared.outbox as new_outbox
from bench.infra import Databases, Vhost
from shared.contracts import build_event

ROOT = Path(__file__).resolve().parents[1]


def load_from_git(rev: str, path: str, name: str, tmp: Path):
    source = subprocess.run(  # noqa: S603
        ["git", "show", f"{rev}:{path}"],  # noqa: S607 - git from PATH, read-only
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    file = tmp / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def envelope() -> dict:
    cid = str(uuid.uuid4())
    return build_event(
        "complaint_received",
        {"complaint_id": cid, "tracking_code": "DMS-TEST-CODE-0003", "channel": "web",
         "category": "lainnya", "description": "Uraian pengaduan untuk pengujian " * 5,
         "confidentiality": "public", "received_at": datetime.now(UTC)},
        correlation_id=cid,
    )


CLK_TCK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """utime+stime in seconds of a PostgreSQL backend (same machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Receiver:
    """Consumes the vhost's test queue in a thread; the receive time of each event id."""

    def __init__(self, uri: str, queue: Queue):
        self.received: dict[str, float] = {}
        self._stop = threading.Event()
        self._conn = Connection(uri)
        self._consumer = self._conn.Consumer([queue], callbacks=[self._on], accept=None)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on(self, body, message):
        self.received[message.properties["message_id"]] = time.perf_counter()
        message.ack()

    def _run(self):
        with self._consumer:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    self._conn.drain_events(timeout=0.2)

    def close(self):
        self._stop.set()
        self._thread.join()
        self._conn.release()


def schedule(rate: float, seconds: float, arrivals: str, seed: int) -> list[float]:
    """Commit times (s from the start): evenly spaced, a Poisson process (independent
    producers, as the services' workers are) of the same mean rate, or `pairs`: Poisson
    arrivals at half the rate, each two commits 1-3 ms apart (notification's unit and
    complainant "sent" commits of one complaint)."""
    n = int(rate * seconds)
    if arrivals == "even":
        return [i / rate for i in range(n)]
    rng, at, times = random.Random(seed), 0.0, []
    pairs = arrivals == "pairs"
    while len(times) < n:
        times.append(at)
        if pairs:
            times.append(at + rng.uniform(0.001, 0.003))
        at += rng.expovariate(rate / 2 if pairs else rate)
    return sorted(times[:n])


def paced_run(relay_mod, gather_ms, url, outbox, vhost_uri, times, receiver,
              **relay_kwargs) -> dict:
    """One relay (in its own thread, as in a service) under commits at `times`."""
    relay_engine = new_db.make_engine(url, pool_size=2, max_overflow=0)
    pids: set[int] = set()

    @event.listens_for(relay_engine, "connect")
    def _pid(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pids.add(cur.fetchone()[0])
        cur.close()

    kwargs = dict(relay_kwargs) if gather_ms is None else {"gather_ms": gather_ms,
                                                          **relay_kwargs}
    relay = relay_mod.OutboxRelay(relay_engine, outbox, vhost_uri, "intake", **kwargs)
    relay.publish_batch()  # connect, declare: not part of the measurement
    cpu = {}
    pg0 = {pid: backend_cpu(pid) for pid in pids}

    def run():
        c0 = time.thread_time()
        relay.run()
        cpu["relay"] = time.thread_time() - c0

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    producer_engine = new_db.make_engine(url, pool_size=2)
    factory = sessionmaker(producer_engine, expire_on_commit=False)
    body = envelope()
    committed: dict[str, float] = {}
    n = len(times)
    t0 = time.perf_counter()
    for at in times:
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        event_id = str(uuid.uuid4())
        with new_db.UnitOfWork(factory, outbox, None, on_events_committed=relay.wake) as uow:
            uow.publish({**body, "event_id": event_id})
            uow.commit()
        committed[event_id] = time.perf_counter()
    deadline = time.monotonic() + 30
    while (time.monotonic() < deadline
           and not all(e in receiver.received for e in committed)):
        time.sleep(0.05)
    # Read before stopping: a relay that owns its connection closes it (the backend exits).
    pg = sum(backend_cpu(pid) - pg0.get(pid, 0.0) for pid in pids
             if Path(f"/proc/{pid}").exists())
    relay.stop()
    thread.join()
    relay._close()
    with producer_engine.connect() as conn:
        batches = conn.execute(
            select(func.count(func.distinct(outbox.c.published_at)))
            .where(outbox.c.event_id.in_(list(committed)))).scalar_one()
        conn.execute(text("TRUNCATE outbox"))  # no dead rows left for the next run's claims
        conn.commit()
    producer_engine.dispose()
    relay_engine.dispose()
    latencies = sorted((receiver.received[e] - t) * 1000 for e, t in committed.items()
                       if e in receiver.received)
    return {"relay_cpu_us": round(cpu["relay"] / n * 1e6), "pg_cpu_us": round(pg / n * 1e6),
            "per_batch": round(n / max(batches, 1), 2), "lost": n - len(latencies),
            "p50_ms": round(latencies[len(latencies) // 2], 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2)}


def paced(args, old_outbox) -> dict:
    rates = [float(r) for r in args.rates.split(",")]
    variants = [("old", old_outbox, None, {})] + [
        (f"new_gather_{g}" + ("" if p == "1" else "_plain"), new_outbox, float(g),
         {"prepared": p == "1"})
        for g in args.gather.split(",") for p in args.prepared.split(",")] + [
        (f"new_gather_{g}_delete", new_outbox, float(g), {"delete_published": True})
        for g in args.gather.split(",") if args.delete]
    vhost, dbs = Vhost(), Databases()
    runs: dict = {}
    try:
        url = dbs.create("abpaced")
        metadata = MetaData()
        outbox = new_db.outbox_table(metadata)
        engine = new_db.make_engine(url)
        metadata.create_all(engine)
        engine.dispose()
        queue = Queue("ab", exchange=Exchange("intake.events", type="topic", durable=True),
                      routing_key="#", durable=True)
        with Connection(vhost.uri) as conn:
            queue(conn.default_channel).declare()
        receiver = Receiver(vhost.uri, queue)
        for round_ in range(args.rounds):
            for rate in rates:
                times = schedule(rate, args.seconds, args.arrivals, seed=round_)
                for label, module, gather, kwargs in variants:
                    r = paced_run(module, gather, url, outbox, vhost.uri, times, receiver,
                                  **kwargs)
                    runs.setdefault(f"{rate:g}/s", {}).setdefault(label, []).append(r)
                    print(f"{rate:g}/s {label}: {r}", file=sys.stderr, flush=True)
        receiver.close()
    finally:
        dbs.close()
        vhost.close()
    summary = {}
    for rate, by_label in runs.items():
        for label, rs in by_label.items():
            summary.setdefault(rate, {})[label] = {
                key: [r[key] for r in rs] for key in rs[0]} | {
                "relay_cpu_us_median": statistics.median(r["relay_cpu_us"] for r in rs),
                "relay_plus_pg_us_median": statistics.median(
                    r["relay_cpu_us"] + r["pg_cpu_us"] for r in rs)}
    return {"rev": args.rev, "seconds": args.seconds, "arrivals": args.arrivals,
            "paced": summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paced", action="store_true")
    parser.add_argument("--rates", default="25,50,100")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--gather", default="0,2,5")
    parser.add_argument("--prepared", default="1",
                        help="this tree's relay with its claim PREPAREd (1), as text (0), or "
                             "both (1,0)")
    parser.add_argument("--delete", action="store_true",
                        help="also this tree's relay deleting published rows (experiment)")
    parser.add_argument("--arrivals", choices=("poisson", "even", "pairs"), default="poisson")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dumas-ab-"))
    old_outbox = load_from_git(args.rev, "shared/outbox.py", "outbox_old", tmp)
    old_db = load_from_git(args.rev, "shared/db.py", "db_old", tmp)
    if args.paced:
        print(json.dumps(paced(args, old_outbox), indent=2))
        return 0
    vhost, dbs = Vhost(), Databases()
    result = {"rev": args.rev, "relay_events_per_s": {"old": [], "new": []},
              "relay_cpu_us": {"old": [], "new": []}, "relay_pg_cpu_us": {"old": [], "new": []},
              "uow": {"old": [], "new": []}}
    try:
        url = dbs.create("ab")
        metadata = MetaData()
        outbox = new_db.outbox_table(metadata)
        processed = new_db.processed_events_table(metadata)
        engine = new_db.make_engine(url)
        metadata.create_all(engine)
        factory = sessionmaker(engine)
        queue = Queue("ab", exchange=Exchange("intake.events", type="topic", durable=True),
                      routing_key="#", durable=True)
        with Connection(vhost.uri) as conn:
            queue(conn.default_channel).declare()
        database = url.rsplit("/", 1)[1]
        admin = new_db.make_engine(url, pool_size=1)

        def backends() -> float:
            """CPU seconds of the database's other backends (the relay's, while it drains)."""
            with admin.connect() as conn:
                pids = conn.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :d "
                    "AND pid <> pg_backend_pid()"), {"d": database}).scalars().all()
            return sum(backend_cpu(pid) for pid in pids if Path(f"/proc/{pid}").exists())

        for _ in range(args.rounds):
            for label, relay_mod, db_mod in (("old", old_outbox, old_db),
                                             ("new", new_outbox, new_db)):
                relay = relay_mod.OutboxRelay(engine, outbox, vhost.uri, "intake")
                with new_db.UnitOfWork(factory, outbox, None) as uow:
                    uow.publish(envelope())
                    uow.commit()
                relay.publish_batch()  # connect and declare: not part of the measurement
                with new_db.UnitOfWork(factory, outbox, None) as uow:
                    for _ in range(args.events):
                        uow.publish(envelope())
                    uow.commit()
                pg0 = backends()
                t0, c0, total = time.perf_counter(), time.process_time(), 0
                while n := relay.publish_batch():
                    total += n
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                result["relay_events_per_s"][label].append(round(total / wall))
                result["relay_cpu_us"][label].append(round(cpu / total * 1e6))
                result["relay_pg_cpu_us"][label].append(round((backends() - pg0) / total * 1e6))
                relay._close()

                uow_engine = db_mod.make_engine(url)
                uow_factory = sessionmaker(uow_engine, expire_on_commit=False)
                body = envelope()
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(args.events):
                    with db_mod.UnitOfWork(uow_factory, outbox, processed) as uow:
                        uow.claim("ab", str(uuid.uuid4()))
                        uow.publish({**body, "event_id": str(uuid.uuid4())})
                        uow.commit()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                result["uow"][label].append({"per_s": round(args.events / wall),
                                             "cpu_us": round(cpu / args.events * 1e6)})
                uow_engine.dispose()
        engine.dispose()
        admin.dispose()
    finally:
        dbs.close()
        vhost.close()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
