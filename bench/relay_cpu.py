"""CPU per published event of the outbox relay (shared/outbox.py) and of RabbitMQ.

    PYTHONPATH=. .venv/bin/python bench/relay_cpu.py [--events 3000] [--batch 4] [--rounds 5]
        [--mode drain|publish] [--tree DIR ...] [--profile FILE]

Each round runs a child process per `--tree` (this script with `--role child`, PYTHONPATH=the
tree, so an older copy of the code, e.g. `git archive HEAD`, is measured interleaved with this
one), eventlet monkey-patched as the services run the relay (a green thread, green sockets), on
a private vhost and a fresh PostgreSQL database of its own:

- `drain`: `--events` outbox rows are staged, then the tree's OutboxRelay (`batch_size=--batch`,
  batches of 3-6 are what the services' relays claim at the flow's maximum load) publishes them
  with `publish_batch()` until the outbox is empty: claim, publish, wait for the confirms,
  commit, per batch.
- `publish`: the same rows, claimed in memory (no database): `OutboxRelay._publish` per batch
  of `--batch`, so the figures are the publish path's alone.

Per event: this process's CPU (time.process_time) and RabbitMQ's (`beam.smp`
utime+stime from /proc; other users of the broker add noise, hence interleaved rounds and
medians). Every event is then checked to have arrived, once and in order, in a queue bound to
the exchange. `--profile FILE` runs the child's drain under cProfile (process_time clock).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def beam_cpu() -> float:
    """RabbitMQ's CPU seconds so far (utime+stime of beam.smp), 0 if it is not found."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if "(beam.smp)" in stat:
            fields = stat.rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLK_TCK
    return 0.0


def child(args) -> None:
    import eventlet

    eventlet.monkey_patch()
    import cProfile

    from kombu import Connection, Exchange, Queue
    from sqlalchemy import MetaData, insert

    from shared.contracts import build_event
    from shared.db import make_engine, outbox_table
    from shared.outbox import OutboxRelay, _Row

    exchange = "intake.events"
    queue = Queue("relay_bench", exchange=Exchange(exchange, type="topic", durable=True),
                  routing_key="#", durable=True)
    with Connection(args.amqp) as conn:
        queue(conn.default_channel).declare()

    kinds = ("complaint_received", "complaint_routed", "notification_sent", "notification_sent")
    rows = []
    for i in range(args.events + 1):  # the first one connects and declares, unmeasured
        cid = str(uuid.uuid4())
        envelope = build_event("complaint_received", {
            "complaint_id": cid, "tracking_code": "DMS-TEST-CODE-0003", "channel": "web",
            "category": "lainnya", "description": "Uraian pengaduan untuk pengujian " * 5,
            "confidentiality": "public", "received_at": datetime.now(UTC)},
            correlation_id=cid)
        rows.append({"event_id": envelope["event_id"], "exchange": exchange,
                     "routing_key": kinds[i % len(kinds)], "correlation_id": cid,
                     "body": json.dumps(envelope), "created_at": datetime.now(UTC)})

    metadata = MetaData()
    table = outbox_table(metadata)
    engine = make_engine(args.db, pool_size=2)
    metadata.create_all(engine)
    relay = OutboxRelay(engine, table, args.amqp, "intake", batch_size=args.batch)
    if args.mode == "drain":
        with engine.begin() as conn:
            conn.execute(insert(table), rows[:1])
        relay.publish_batch()  # connect and declare
        with engine.begin() as conn:
            conn.execute(insert(table), rows[1:])
    else:
        claimed = [_Row(i, r["event_id"], r["exchange"], r["routing_key"], r["correlation_id"],
                        r["body"]) for i, r in enumerate(rows)]
        relay._publish(claimed[:1])

    profiler = cProfile.Profile(time.process_time) if args.profile else None
    c0, b0, t0 = time.process_time(), beam_cpu(), time.perf_counter()
    if profiler:
        profiler.enable()
    if args.mode == "drain":
        total = 0
        while n := relay.publish_batch():
            total += n
    else:
        for i in range(1, len(claimed), args.batch):
            relay._publish(claimed[i:i + args.batch])
        total = len(claimed) - 1
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    broker = beam_cpu() - b0
    relay._close()
    engine.dispose()
    if profiler:
        profiler.dump_stats(args.profile)

    # Every event arrived once, in the order of the outbox.
    expected = [r["event_id"] for r in rows]
    got = []
    with Connection(args.amqp) as conn:
        channel = conn.default_channel
        while len(got) < len(expected):
            message = channel.basic_get(queue.name, no_ack=True)
            if message is None:
                break
            got.append(message.properties["message_id"])
    if total != args.events or got != expected:
        raise SystemExit(f"published {total}, received {len(got)} of {len(expected)} "
                         f"(in order: {got == expected[:len(got)]})")
    print(json.dumps({"cpu_us": round(cpu / total * 1e6, 1),
                      "beam_us": round(broker / total * 1e6, 1),
                      "per_s": round(total / wall)}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="main")
    parser.add_argument("--mode", choices=("drain", "publish"), default="drain")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[])
    parser.add_argument("--profile")
    parser.add_argument("--amqp")
    parser.add_argument("--db")
    args = parser.parse_args(argv)
    if args.role == "child":
        child(args)
        return 0
    sys.path.insert(0, str(ROOT))
    from bench.infra import Databases, Vhost

    trees = args.tree or [str(ROOT)]
    results: dict[str, list] = {tree: [] for tree in trees}
    for round_ in range(args.rounds):
        for tree in trees:
            vhost, dbs = Vhost(), Databases()
            try:
                db = dbs.create(f"relay{round_}")
                cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "child",
                       "--mode", args.mode, "--events", str(args.events),
                       "--batch", str(args.batch), "--amqp", vhost.uri, "--db", db]
                if args.profile:
                    cmd += ["--profile", args.profile]
                env = {**os.environ, "PYTHONPATH": tree, "EVENTLET_TESTS": "1"}
                out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,  # noqa: S603
                                     check=False, timeout=300)
                if out.returncode:
                    raise SystemExit(out.stderr)
                results[tree].append(json.loads(out.stdout.strip().splitlines()[-1]))
            finally:
                dbs.close()
                vhost.close()
            print(tree, results[tree][-1], file=sys.stderr, flush=True)
    summary = {tree: {key: [r[key] for r in runs] for key in runs[0]}
               | {f"{key}_median": statistics.median(r[key] for r in runs)
                  for key in ("cpu_us", "beam_us")}
               for tree, runs in results.items()}
    print(json.dumps({"mode": args.mode, "events": args.events, "batch": args.batch, **summary},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
