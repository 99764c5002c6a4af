"""The naive 3-hop nameko pipeline the benchmark compares Dumas with.

    HTTP POST /items -> A: insert a row, commit, dispatch `item_created`
                     -> B: insert a row, commit, dispatch `item_forwarded`
                     -> C: insert a row, commit

Written the way a first nameko service usually is: one SQLAlchemy session per request/message,
nameko's own EventDispatcher (publisher confirms, one wait per event) and `event_handler`
(SERVICE_POOL, durable queue), nameko's default max_workers. No outbox, no idempotency, no
retries. Each service runs in its own `nameko run` process with its own PostgreSQL database
(BASELINE_DATABASE_URL); `bench/run.py` starts them.
"""

import json
import uuid
from datetime import UTC, datetime

from nameko.events import EventDispatcher, event_handler
from nameko.extensions import DependencyProvider
from nameko.web.handlers import http
from sqlalchemy import Column, DateTime, MetaData, String, Table, create_engine
from sqlalchemy.orm import sessionmaker

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("payload", String(2000), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class Session(DependencyProvider):
    def setup(self):
        self.engine = create_engine(self.container.config["BASELINE_DATABASE_URL"])
        metadata.create_all(self.engine)
        self.factory = sessionmaker(self.engine)

    def stop(self):
        self.engine.dispose()

    def get_dependency(self, worker_ctx):
        return self.factory


def _insert(factory, item_id: str, payload: str) -> None:
    with factory() as session:
        session.execute(
            items.insert().values(id=item_id, payload=payload, created_at=datetime.now(UTC))
        )
        session.commit()


class ServiceA:
    name = "bench_a"
    db = Session()
    dispatch = EventDispatcher()

    @http("POST", "/items")
    def create(self, request):
        payload = request.get_data(as_text=True)
        item_id = str(uuid.uuid4())
        _insert(self.db, item_id, payload)
        self.dispatch("item_created", {"id": item_id, "payload": payload})
        return 201, {"Content-Type": "application/json"}, json.dumps({"id": item_id})

    @http("GET", "/health")
    def health(self, request):
        return 200, "ok"


class ServiceB:
    name = "bench_b"
    db = Session()
    dispatch = EventDispatcher()

    @event_handler("bench_a", "item_created")
    def forward(self, event):
        _insert(self.db, event["id"], event["payload"])
        self.dispatch("item_forwarded", event)


class ServiceC:
    name = "bench_c"
    db = Session()

    @event_handler("bench_b", "item_forwarded")
    def finish(self, event):
        _insert(self.db, event["id"], event["payload"])
