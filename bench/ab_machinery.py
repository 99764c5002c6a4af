"""A/B of the shared machinery: this tree's OutboxRelay and UnitOfWork against a git revision's.

    .venv/bin/python -m bench.ab_machinery [--rev HEAD] [--events 1000] [--rounds 3]

Loads shared/outbox.py and shared/db.py of `--rev` (read with `git show`, nothing is checked
out) next to the current ones and runs them interleaved against one fresh PostgreSQL database
and a private vhost: the relay's drain rate (events/s, batches of 200) and one UnitOfWork
(claim + publish + commit) per iteration (per second, and client CPU per unit of work).
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kombu import Connection, Exchange, Queue
from sqlalchemy import MetaData
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dumas-ab-"))
    old_outbox = load_from_git(args.rev, "shared/outbox.py", "outbox_old", tmp)
    old_db = load_from_git(args.rev, "shared/db.py", "db_old", tmp)
    vhost, dbs = Vhost(), Databases()
    result = {"rev": args.rev, "relay_events_per_s": {"old": [], "new": []},
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
        for _ in range(args.rounds):
            for label, relay_mod, db_mod in (("old", old_outbox, old_db),
                                             ("new", new_outbox, new_db)):
                with new_db.UnitOfWork(factory, outbox, None) as uow:
                    for _ in range(args.events):
                        uow.publish(envelope())
                    uow.commit()
                relay = relay_mod.OutboxRelay(engine, outbox, vhost.uri, "intake")
                t0, total = time.perf_counter(), 0
                while n := relay.publish_batch():
                    total += n
                result["relay_events_per_s"][label].append(
                    round(total / (time.perf_counter() - t0)))
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
    finally:
        dbs.close()
        vhost.close()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
