"""What the benchmark needs around the code it measures: a private RabbitMQ vhost, fresh
PostgreSQL databases, HTTP load generators and per-process CPU/RSS readings from /proc.

Standard library + requests + SQLAlchemy only; nothing here is imported by the services.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import requests
from sqlalchemy import create_engine, text

MGMT = os.environ.get("RABBIT_MGMT_URL", "http://127.0.0.1:15672")
AMQP_HOST = os.environ.get("RABBIT_AMQP_HOST", "127.0.0.1:5672")
AUTH = ("guest", "guest")
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql+psycopg2://postgres@127.0.0.1:5432")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- broker, databases


class Vhost:
    """A private vhost on the local RabbitMQ (management API), deleted on close."""

    def __init__(self, prefix: str = "dumas_bench"):
        self.name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        r = requests.put(f"{MGMT}/api/vhosts/{quote(self.name)}", auth=AUTH, timeout=10)
        r.raise_for_status()
        r = requests.put(
            f"{MGMT}/api/permissions/{quote(self.name)}/guest",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            auth=AUTH,
            timeout=10,
        )
        r.raise_for_status()
        # Classic queues in the format production's broker has: RabbitMQ 4.x (the compose and
        # Kubernetes image) keeps classic queues only in storage version 2, which spends ~25 %
        # less broker CPU per persistent message than version 1, the default of older brokers
        # such as this machine's 3.10. Applies to everything in the vhost alike (ceiling,
        # baseline, Dumas); a broker without queue versions ignores the key.
        r = requests.put(
            f"{MGMT}/api/policies/{quote(self.name, safe='')}/classic-queue-v2",
            json={"pattern": ".*", "apply-to": "queues", "priority": 0,
                  "definition": {"queue-version": 2}},
            auth=AUTH,
            timeout=10,
        )
        r.raise_for_status()
        self.uri = f"amqp://guest:guest@{AMQP_HOST}/{quote(self.name, safe='')}"

    def queues(self) -> dict[str, dict]:
        r = requests.get(
            f"{MGMT}/api/queues/{quote(self.name, safe='')}", auth=AUTH, timeout=10
        )
        r.raise_for_status()
        return {q["name"]: q for q in r.json()}

    def close(self) -> None:
        requests.delete(f"{MGMT}/api/vhosts/{quote(self.name)}", auth=AUTH, timeout=60)


class Databases:
    """Fresh PostgreSQL databases named dumas_bench_<what>_<suffix>, dropped on close."""

    def __init__(self):
        self.suffix = uuid.uuid4().hex[:8]
        self.names: list[str] = []
        self._admin = create_engine(
            f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", pool_size=1
        )

    def create(self, what: str) -> str:
        name = f"dumas_bench_{what}_{self.suffix}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return f"{PG_SERVER}/{name}"

    def close(self) -> None:
        with self._admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


# --------------------------------------------------------------------------- processes


@dataclass
class ProcSample:
    cpu_seconds: float
    rss_mb: float
    peak_rss_mb: float


def proc_sample(pid: int) -> ProcSample | None:
    """CPU seconds (user+system), current and peak resident memory of `pid`, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
    mem = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            mem[key] = int(value.split()[0]) / 1024
    return ProcSample(cpu, mem.get("VmRSS", 0.0), mem.get("VmHWM", 0.0))


def _cpu_of(pid: str) -> tuple[str, float] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, _, rest = stat.partition("(")[2].rpartition(")")
    fields = rest.split()
    return name, (int(fields[11]) + int(fields[12])) / CLK_TCK


def _postgres_part(pid: str, databases: dict[str, str]) -> str:
    """`postgres:<label>` for a backend connected to one of `databases` (name -> label; the
    process title is `postgres: [<cluster>:] <user> <database> <client> <state>`), else
    `postgres:other` (the server's own processes and every other database)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "postgres:other"
    parts = title.split()
    if parts[:1] != ["postgres:"]:
        return "postgres:other"
    parts = parts[2:] if len(parts) > 1 and parts[1].endswith(":") else parts[1:]  # cluster
    if len(parts) >= 2 and parts[1] in databases:
        return f"postgres:{databases[parts[1]]}"
    return "postgres:other"


class MachineCpu:
    """Where CPU goes besides the measured services: PostgreSQL (every `postgres` process,
    split by the databases named in `databases`, name -> label), RabbitMQ (`beam.smp`), this
    process (the load generator and the benchmark's pollers) and the whole machine (busy time
    of /proc/stat, all cores). `snapshot()` twice, then `per_item(a, b, n)`: ms per item.
    Processes are compared pid by pid, so a backend that exits between the snapshots takes
    its CPU with it (an undercount, never a negative figure)."""

    def __init__(self, databases: dict[str, str] | None = None):
        self.databases = databases or {}
        self._parts: dict[str, str] = {}

    def snapshot(self) -> dict:
        pids = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            got = _cpu_of(entry.name)
            if not got or got[0] not in ("postgres", "beam.smp"):
                continue
            if got[0] == "beam.smp":
                part = "rabbitmq"
            else:  # a pid's database does not change; read its title once
                key = f"{entry.name}:{got[0]}"
                if key not in self._parts:
                    self._parts[key] = _postgres_part(entry.name, self.databases)
                part = self._parts[key]
            pids[entry.name] = (part, got[1])
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        ticks = [int(v) for v in first]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return {
            "pids": pids,
            "load_generator": _cpu_of("self")[1],
            "machine": (sum(ticks[:8]) - idle) / CLK_TCK,  # guest time is counted in user
        }

    @staticmethod
    def per_item(before: dict, after: dict, count: int) -> dict[str, float]:
        """ms of CPU per completed item between two snapshots, by part: `postgres` (all of
        it) and each `postgres:<label>`, `rabbitmq`, `load_generator`, `machine`."""
        if not count:
            return {}
        parts: dict[str, float] = {"postgres": 0.0}
        for pid, (part, cpu) in after["pids"].items():
            used = cpu - before["pids"].get(pid, (part, 0.0))[1]
            parts[part] = parts.get(part, 0.0) + used
            if part.startswith("postgres"):
                parts["postgres"] += used
        parts["load_generator"] = after["load_generator"] - before["load_generator"]
        parts["machine"] = after["machine"] - before["machine"]
        return {k: round(v * 1000 / count, 2) for k, v in sorted(parts.items())}


class RssWatcher:
    """Samples the resident memory of some processes every `interval` s while running."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5):
        self.pids = pids
        self.interval = interval
        self.max_rss: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                sample = proc_sample(pid)
                if sample:
                    self.max_rss[name] = max(self.max_rss[name], sample.rss_mb)
            self._stop.wait(self.interval)


# --------------------------------------------------------------------------- HTTP load


@dataclass
class Submission:
    started: float
    finished: float
    status: int
    key: str | None  # tracking code / item id from the response


@dataclass
class LoadResult:
    submissions: list[Submission] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def accepted(self) -> list[Submission]:
        return [s for s in self.submissions if 200 <= s.status < 300 and s.key]

    @property
    def errors(self) -> int:
        return len(self.submissions) - len(self.accepted)

    def error_kinds(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for s in self.submissions:
            if not (200 <= s.status < 300 and s.key):
                kinds[str(s.status)] = kinds.get(str(s.status), 0) + 1
        return kinds


class _Client:
    """One keep-alive HTTP/1.1 connection (reconnects after an error)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def post(
        self, path: str, body: bytes, key_field: str, headers: dict | None = None
    ) -> tuple[int, str | None]:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(
                    "POST", path, body=body,
                    headers={"Content-Type": "application/json", **(headers or {})},
                )
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    return 0, None  # connection error: counted as an error
                continue
            if response.getheader("connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
            key = None
            if 200 <= response.status < 300:
                try:
                    key = json.loads(data).get(key_field)
                except ValueError:
                    key = None
            return response.status, key
        return 0, None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class Loader:
    """POSTs JSON bodies to one URL path, closed loop (as fast as possible) or open loop (a fixed
    offered rate). Plain threads: the GIL limits the client to roughly one core."""

    def __init__(
        self, host: str, port: int, path: str, key_field: str, body_factory,
        forwarded_for: bool = False,
    ):
        self.host, self.port, self.path = host, port, path
        self.key_field = key_field
        self.body_factory = body_factory
        # Many citizens behind the reverse proxy (X-Forwarded-For), not one abusive address.
        self.forwarded_for = forwarded_for
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def _one(self, client: _Client, i: int) -> Submission:
        with self._lock:
            n = next(self._seq)
        body = json.dumps(self.body_factory(n)).encode()
        headers = None
        if self.forwarded_for:
            headers = {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}
        started = time.monotonic()
        status, key = client.post(self.path, body, self.key_field, headers)
        return Submission(started, time.monotonic(), status, key)

    def closed_loop(
        self, total: int, concurrency: int, max_seconds: float | None = None
    ) -> LoadResult:
        """`total` requests by `concurrency` clients, each sending the next when answered;
        no new request after `max_seconds`."""
        result = LoadResult()
        counter = iter(range(total))
        lock = threading.Lock()
        stop_at = time.monotonic() + max_seconds if max_seconds else float("inf")

        def worker():
            client = _Client(self.host, self.port)
            out = []
            while time.monotonic() < stop_at:
                with lock:
                    i = next(counter, None)
                if i is None:
                    break
                out.append(self._one(client, i))
            client.close()
            with lock:
                result.submissions.extend(out)

        result.started = time.monotonic()
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result.finished = time.monotonic()
        return result

    def open_loop(self, rate: float, duration: float, max_inflight: int = 64) -> LoadResult:
        """Offer `rate` requests per second for `duration` seconds on a fixed schedule."""
        result = LoadResult()
        total = max(1, int(rate * duration))
        tickets: queue.Queue = queue.Queue()
        lock = threading.Lock()

        def worker():
            client = _Client(self.host, self.port)
            out = []
            while True:
                i = tickets.get()
                if i is None:
                    break
                out.append(self._one(client, i))
            client.close()
            with lock:
                result.submissions.extend(out)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max_inflight)]
        for t in threads:
            t.start()
        result.started = start = time.monotonic()
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tickets.put(i)
        for _ in threads:
            tickets.put(None)
        for t in threads:
            t.join()
        result.finished = time.monotonic()
        return result


def wait_until(predicate, timeout: float, interval: float = 0.2):
    """Poll `predicate()` (returns (done, value)) until done or timeout; the last value."""
    deadline = time.monotonic() + timeout
    while True:
        done, value = predicate()
        if done or time.monotonic() >= deadline:
            return done, value
        time.sleep(interval)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
