"""CPU per message of the shared event consumers (`event_consumer`, `batch_event_consumer`)
with a handler that does nothing: what nameko, kombu and our adapter cost per event.

    PYTHONPATH=. .venv/bin/python bench/consumer_cpu.py [--kind single|batch] [--events 3000]
        [--rounds 3] [--rate PER_S] [--tree DIR ...] [--profile FILE]

Each round runs a child process per `--tree` (this script with `--role child`,
PYTHONPATH=the tree, so an older copy of the code is measured interleaved with this one): the
events are published to the consumer's queue on a private vhost before the container starts
(a backlog), then one nameko container (20 workers; logging not configured, so Python's
default WARNING level) consumes them; CPU = time.process_time of the child from the
container's start to the last handled event, per message. `--rate N` measures moderate load
instead of a backlog: the container starts on an empty queue and a separate publisher process
sends the events at N per second (each arrives alone, as below saturation); CPU from the first
publish to the last handled event (the consumer's idle wake-ups included, the publisher's not).
`--profile FILE` runs the child under cProfile with process_time as its clock (pstats written
to FILE).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args) -> None:
    import eventlet

    eventlet.monkey_patch()
    import cProfile

    from kombu import Connection
    from nameko.containers import ServiceContainer

    from shared import messaging
    from shared.nameko_ext import batch_event_consumer, event_consumer

    done = {"n": 0}
    finished = eventlet.Event()
    total = args.events

    def count(n):
        done["n"] += n
        if done["n"] >= total:
            finished.send(True)

    if args.kind == "single":
        class Bench:
            name = "bench"

            @event_consumer("intake", "complaint_received")
            def on_received(self, event):
                count(1)
    else:
        class Bench:
            name = "bench"

            @batch_event_consumer("intake", "complaint_received", max_batch=20, max_wait_ms=2)
            def on_received(self, events):
                count(len(events))

    with Connection(args.amqp) as conn:
        messaging.consumer_queue("bench", "intake", "complaint_received")(
            conn.default_channel).declare()
    if not args.rate:
        publish(args.amqp, total, rate=None)
    container = ServiceContainer(Bench, {"AMQP_URI": args.amqp, "max_workers": 20})
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    if args.rate:
        container.start()
        publisher = subprocess.Popen([  # noqa: S603
            sys.executable, str(Path(__file__).resolve()), "--role", "publisher",
            "--events", str(total), "--rate", str(args.rate), "--amqp", args.amqp],
            stdout=subprocess.PIPE, text=True)
        publisher.stdout.readline()  # "ready": the events are built, publishing starts now
    c0, t0, r0 = time.process_time(), time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    if profiler:
        profiler.enable()
    if not args.rate:
        container.start()
    # Bounded: a publisher that died (or a lost message) fails the round instead of hanging it.
    if not finished.wait(timeout=120 + (total / args.rate if args.rate else 0)):
        publisher_exit = publisher.poll() if args.rate else None
        raise SystemExit(f"only {done['n']} of {total} events handled "
                         f"(publisher exit status {publisher_exit})")
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    container.stop()
    if args.rate:
        publisher.wait()
    if profiler:
        profiler.dump_stats(args.profile)
    print(json.dumps({"cpu_us": round(cpu / total * 1e6, 1), "per_s": round(total / wall),
                      "sys_us": round((r1.ru_stime - r0.ru_stime) / total * 1e6, 1)}))


def publish(amqp: str, total: int, rate: float | None) -> None:
    """`total` complaint_received events to the bench consumer's queue; at `rate` per second on
    a fixed schedule, or all at once."""
    from kombu import Connection, Exchange, Producer

    from shared.contracts import build_event

    bodies = []
    for _ in range(total):
        cid = str(uuid.uuid4())
        envelope = build_event("complaint_received", {
            "complaint_id": cid, "tracking_code": "DMS-TEST-CODE-0003", "channel": "web",
            "category": "lainnya", "description": "Uraian pengaduan untuk pengujian " * 5,
            "confidentiality": "public", "received_at": datetime.now(UTC)},
            correlation_id=cid)
        bodies.append((json.dumps(envelope).encode(), envelope["event_id"], cid))
    with Connection(amqp) as conn:
        producer = Producer(conn.default_channel)
        exchange = Exchange("intake.events", type="topic", durable=True)
        if rate:
            print("ready", flush=True)
        start = time.perf_counter()
        for i, (body, event_id, cid) in enumerate(bodies):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            producer.publish(body, exchange=exchange, routing_key="complaint_received",
                             content_type="application/json", content_encoding="utf-8",
                             delivery_mode=2, message_id=event_id, correlation_id=cid)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="main")
    parser.add_argument("--kind", choices=("single", "batch"), default="single")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--rate", type=float, help="events per second (default: a backlog)")
    parser.add_argument("--profile")
    parser.add_argument("--amqp")
    args = parser.parse_args(argv)
    if args.role == "child":
        child(args)
        return 0
    if args.role == "publisher":
        publish(args.amqp, args.events, args.rate)
        return 0
    sys.path.insert(0, str(ROOT))
    from bench.infra import Vhost

    trees = args.tree or [str(ROOT)]
    results: dict[str, list] = {tree: [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:
            vhost = Vhost()
            try:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "child",
                       "--kind", args.kind, "--events", str(args.events), "--amqp", vhost.uri]
                if args.rate:
                    cmd += ["--rate", str(args.rate)]
                if args.profile:
                    cmd += ["--profile", args.profile]
                env = {**os.environ, "PYTHONPATH": tree, "EVENTLET_TESTS": "1"}
                out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,  # noqa: S603
                                     check=True, timeout=300).stdout
                results[tree].append(json.loads(out.strip().splitlines()[-1]))
            finally:
                vhost.close()
            print(tree, results[tree][-1], flush=True)
    summary = {tree: {"cpu_us": [r["cpu_us"] for r in runs],
                      "cpu_us_median": statistics.median(r["cpu_us"] for r in runs),
                      "per_s": [r["per_s"] for r in runs]}
               for tree, runs in results.items()}
    print(json.dumps({"kind": args.kind, "events": args.events, "rate": args.rate, **summary},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
