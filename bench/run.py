"""The Dumas benchmark: the whole flow against its ceilings and a naive baseline, in one run.

    .venv/bin/python -m bench.run            # full run (about 5-8 minutes on 2 cores)
    .venv/bin/python -m bench.run --quick    # smaller numbers, about 2-3 minutes
    make bench [BENCH_ARGS=--quick]

Creates a private RabbitMQ vhost and fresh PostgreSQL databases, measures

  1. ceiling: raw kombu publish (persistent, publisher confirms) and consume (manual acks);
  2. baseline: the naive 3-hop nameko pipeline of bench/baseline.py, 3 processes;
  3. Dumas: the four services as processes; throughput at maximum load (completed = the unit's
     notification is sent AND reporting has counted it), latency at fixed offered loads;
  4. burst: N complaints as fast as possible: errors, time to drain, lost;
  5. routing decision time with 10 / 1,000 / 100,000 units;
  6. reporting statistics over 1,000,000 complaints;
  7. CPU seconds and peak RSS of every service process;

prints a table and writes bench/results.json (and var/bench/results.png, with matplotlib).
Everything it created is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import bindparam, create_engine, text

from bench.infra import (
    Databases,
    Loader,
    MachineCpu,
    RssWatcher,
    Vhost,
    percentile,
    proc_sample,
    wait_until,
)
from services.supervisor import _parent_death_hook

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORK = ROOT / "var" / "bench"

KECAMATAN = [f"17.08.0{i}" for i in range(1, 9)]
DESCRIPTION = (
    "Pendaftaran nikah kami di KUA sudah dua minggu belum diproses, mohon segera dibantu. "
    "Berkas sudah lengkap sejak awal bulan."
)

FULL = {
    "ceiling_messages": 5000,
    "max_load_complaints": 3000,
    "max_load_concurrency": 24,
    "max_load_seconds": 30,
    "max_load_drain": 60,
    "latency_drain": 30,
    # before each latency phase and the burst: the previous phase's remaining work done
    "settle": 90,
    "latency_rates": [25, 50, 100],
    "latency_seconds": 20,
    "burst": 5000,
    "burst_concurrency": 32,
    "routing_units": [10, 1000, 100000],
    "routing_decisions": 20000,
    "stats_rows": 1_000_000,
}
QUICK = {
    **FULL,
    "ceiling_messages": 2000,
    "max_load_complaints": 1000,
    "max_load_seconds": 15,
    "max_load_drain": 30,
    "latency_drain": 20,
    "settle": 45,
    "latency_seconds": 6,
    "burst": 1500,
    "routing_decisions": 5000,
    "stats_rows": 200_000,
}


# Every wait is cut short so that the whole run ends by this time (set by main).
DEADLINE = [float("inf")]


def budget(timeout: float) -> float:
    """`timeout`, or less if the run's time budget ends sooner (at least 1 s)."""
    return max(1.0, min(timeout, DEADLINE[0] - time.monotonic()))


def out_of_time(margin: float = 0.0) -> bool:
    return time.monotonic() + margin >= DEADLINE[0]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


RUN_ID = uuid.uuid4().hex[:6]


def complaint(i: int) -> dict:
    """The i-th complaint of the run: a different person each time (no duplicate detection)."""
    return {
        "category": "nikah_rujuk",
        "kecamatan_code": KECAMATAN[i % len(KECAMATAN)],
        "description": f"{DESCRIPTION} Nomor berkas {RUN_ID}-{i}.",
        "complainant": {"name": "Warga Uji", "email": f"warga.{RUN_ID}.{i}@example.com"},
    }


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def latency_summary(values: list[float]) -> dict:
    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values)) if values else None,
    }


# =========================================================================== 1. ceiling


def bench_ceiling(amqp_uri: str, n: int) -> dict:
    from kombu import Connection, Queue

    body = json.dumps({"data": "x" * 700}).encode()
    out = {}
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue = Queue("bench.ceiling", durable=True, auto_delete=False)
        queue(channel).declare()
        queue(channel).purge()
        producer = conn.Producer(channel=channel)
        t0 = time.perf_counter()
        for i in range(n):
            producer.publish(body, routing_key="bench.ceiling", delivery_mode=2, retry=False,
                             message_id=str(i))
        out["publish_confirm_each_per_s"] = round(n / (time.perf_counter() - t0))
    # One confirm wait per batch of 200 (what a batching outbox relay can reach).
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        channel.confirm_select()
        acked = {"tag": 0}

        def on_ack(tag, multiple):
            acked["tag"] = max(acked["tag"], tag)

        channel.events["basic_ack"].add(on_ack)
        producer = conn.Producer(channel=channel)
        t0 = time.perf_counter()
        sent = 0
        while sent < n:
            batch = min(200, n - sent)
            for _ in range(batch):
                producer.publish(body, routing_key="bench.ceiling", delivery_mode=2, retry=False)
            sent += batch
            while acked["tag"] < sent:
                conn.drain_events(timeout=10)
        out["publish_confirm_batch_per_s"] = round(n / (time.perf_counter() - t0))
    with Connection(amqp_uri) as conn:
        channel = conn.channel()
        channel.basic_qos(0, 100, False)
        got = {"n": 0}

        def on_message(_body, message):
            got["n"] += 1
            message.ack()

        queue = Queue("bench.ceiling", durable=True, auto_delete=False)
        with conn.Consumer(queue, channel=channel, callbacks=[on_message], accept=None):
            t0 = time.perf_counter()
            while got["n"] < 2 * n:
                conn.drain_events(timeout=10)
            out["consume_ack_per_s"] = round(2 * n / (time.perf_counter() - t0))
        queue(channel).delete()
    return out


# =========================================================================== processes


class Proc:
    """A `nameko run` process started by the benchmark (own session, killed with us)."""

    def __init__(self, name: str, command: list[str], env: dict, log_path: Path):
        self.name = name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        with log_path.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own venv's nameko
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_parent_death_hook(),  # killed with the benchmark, whatever happens
            )
        self.pid = self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def service_env(extra: dict) -> dict:
    env = dict(os.environ)
    env.update(extra)
    env["EVENTLET_TESTS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_http(url: str, procs: list[Proc], timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.popen.poll() is not None:
                raise RuntimeError(f"{p.name} exited; see {p.log_path}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310
            if r.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def cpu_snapshot(procs: dict[str, Proc]) -> dict[str, float]:
    out = {}
    for name, p in procs.items():
        s = proc_sample(p.pid)
        out[name] = s.cpu_seconds if s else 0.0
    return out


def cpu_delta(before: dict, after: dict) -> dict:
    return {k: round(after[k] - before[k], 2) for k in before}


def idle_cpu_rates(procs: dict[str, Proc], seconds: float) -> dict[str, float]:
    """CPU seconds per second each process spends with no load at all."""
    before = cpu_snapshot(procs)
    time.sleep(seconds)
    after = cpu_snapshot(procs)
    return {k: (after[k] - before[k]) / seconds for k in before}


def cpu_per_complaint(cpu: dict, idle: dict, seconds: float, count: int) -> dict:
    """CPU ms per completed complaint per process, net of its idle CPU over the same time
    (empty when nothing completed: there is no per-complaint figure then)."""
    if not count:
        return {}
    return {k: round(max(0.0, v - idle.get(k, 0.0) * seconds) * 1000 / max(count, 1), 2)
            for k, v in cpu.items()}


# =========================================================================== 2. baseline


def bench_baseline(cfg: dict, amqp_uri: str, dbs: Databases, free_port) -> dict:
    port = free_port()
    urls = {svc: dbs.create(f"baseline_{svc}") for svc in "abc"}
    procs = {}
    for svc in "abc":
        env = service_env({
            "AMQP_URI": amqp_uri,
            "BASELINE_DATABASE_URL": urls[svc],
            "BASELINE_HTTP_ADDRESS": f"127.0.0.1:{port}",
        })
        procs[svc] = Proc(
            f"baseline_{svc}",
            [str(BIN / "nameko"), "run", "--config", "bench/baseline.yaml",
             f"bench.baseline:Service{svc.upper()}"],
            env, WORK / "logs" / f"baseline_{svc}.log",
        )
    c_engine = create_engine(urls["c"], pool_size=1, max_overflow=0)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", list(procs.values()))
        time.sleep(1.0)  # B and C consumers attach to their queues
        loader = Loader("127.0.0.1", port, "/items", "id", lambda i: {"n": i, "text": DESCRIPTION})

        def completed(ids):
            stmt = text("SELECT count(*) FROM items WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True))
            with c_engine.connect() as conn:
                return conn.execute(stmt, {"ids": ids}).scalar()

        def run_load(result):
            ids = [s.key for s in result.accepted]
            done, count = wait_until(
                lambda: ((c := completed(ids)) >= len(ids), c), budget(cfg["max_load_drain"]), 0.1)
            return ids, count, time.monotonic()

        loader.closed_loop(100, 8)  # warm-up
        log("baseline: max load")
        machine = MachineCpu({url.rsplit("/", 1)[1]: svc for svc, url in urls.items()})
        cpu0, m0 = cpu_snapshot(procs), machine.snapshot()
        res = loader.closed_loop(cfg["max_load_complaints"], cfg["max_load_concurrency"],
                                 cfg["max_load_seconds"])
        ids, count, drained = run_load(res)
        cpu1, m1 = cpu_snapshot(procs), machine.snapshot()
        out = {
            "submitted": len(res.submissions),
            "errors": res.errors,
            "completed": count,
            "accept_per_s": round(len(res.accepted) / (res.finished - res.started), 1),
            "completed_per_s": round(count / (drained - res.started), 1),
            "cpu_seconds": cpu_delta(cpu0, cpu1),
            "cpu_ms_per_flow": round(
                sum(cpu_delta(cpu0, cpu1).values()) * 1000 / max(count, 1), 2),
            # the rest of the machine per flow: database, broker, load generator, all cores
            "machine_cpu_ms_per_flow": machine.per_item(m0, m1, count),
        }
        out["latency"] = baseline_latency(cfg, loader, urls, completed)
        out["processes"] = {
            n: {"peak_rss_mb": round(proc_sample(p.pid).peak_rss_mb, 1)} for n, p in procs.items()
        }
        return out
    finally:
        for p in procs.values():
            p.stop()
        c_engine.dispose()


def baseline_latency(cfg: dict, loader: Loader, urls: dict, completed) -> dict:
    """Latency of the baseline at 50/s offered: A's insert -> C's insert (server clocks)."""
    res = loader.open_loop(50, cfg["latency_seconds"])
    ids = [s.key for s in res.accepted]
    wait_until(lambda: ((c := completed(ids)) >= len(ids), c), budget(60), 0.2)
    stmt = text("SELECT id, created_at FROM items WHERE id IN :ids").bindparams(
        bindparam("ids", expanding=True))
    times = {}
    for svc in ("a", "c"):
        engine = create_engine(urls[svc], pool_size=1)
        with engine.connect() as conn:
            times[svc] = dict(conn.execute(stmt, {"ids": ids}).all())
        engine.dispose()
    values = [(times["c"][i] - times["a"][i]).total_seconds() for i in ids if i in times["c"]]
    return {"offered_per_s": 50, **latency_summary(values)}


# =========================================================================== 3/4. Dumas


class DumasCluster:
    def __init__(self, amqp_uri: str, dbs: Databases, free_port):
        from services.supervisor import SERVICES

        self.services = SERVICES
        self.urls = {svc: dbs.create(svc) for svc in SERVICES}
        self.ports = {svc: free_port() for svc in SERVICES}
        self.var_dir = WORK / f"var-{uuid.uuid4().hex[:6]}"
        env = {"AMQP_URI": amqp_uri, "DUMAS_VAR_DIR": str(self.var_dir)}
        for svc in SERVICES:
            env[f"{svc.upper()}_DATABASE_URL"] = self.urls[svc]
            env[f"{svc.upper()}_HTTP_ADDRESS"] = f"127.0.0.1:{self.ports[svc]}"
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{self.ports['intake']}"
        # The load comes from many addresses behind a reverse proxy (see Loader), so intake's
        # per-address limit applies per simulated citizen, as in production.
        env["TRUST_PROXY"] = "1"
        self.env = service_env(env)
        self.procs: dict[str, Proc] = {}
        self.reporting = create_engine(self.urls["reporting"], pool_size=2, max_overflow=0)

    def start(self) -> None:
        migrate = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "services.cli", "migrate"], cwd=ROOT, env=self.env,
            capture_output=True, text=True, timeout=300, check=False,
        )
        if migrate.returncode:
            raise RuntimeError(f"migration failed:\n{migrate.stdout}\n{migrate.stderr}")
        for svc in self.services:
            self.procs[svc] = Proc(
                svc,
                [str(BIN / "nameko"), "run", "--config", f"services/{svc}/config.yaml",
                 f"services.{svc}.service"],
                self.env, WORK / "logs" / f"{svc}.log",
            )
        for svc in self.services:
            wait_http(f"http://127.0.0.1:{self.ports[svc]}/health", list(self.procs.values()))

    def stop(self) -> None:
        # Consumers before the services they call: notification's sends still waiting for
        # intake's get_contacts would otherwise time out and log a failure each.
        for p in reversed(list(self.procs.values())):
            p.stop()
        self.reporting.dispose()

    def loader(self) -> Loader:
        return Loader("127.0.0.1", self.ports["intake"], "/api/v1/complaints",
                      "tracking_code", complaint, forwarded_for=True)

    def completed(self, codes: list[str]) -> int:
        stmt = text(
            "SELECT count(*) FROM complaint_facts WHERE tracking_code IN :codes "
            "AND unit_notified_at IS NOT NULL AND received_at IS NOT NULL"
        ).bindparams(bindparam("codes", expanding=True))
        with self.reporting.connect() as conn:
            return conn.execute(stmt, {"codes": codes}).scalar()

    def wait_completed(self, codes: list[str], timeout: float) -> tuple[int, float]:
        _, count = wait_until(
            lambda: ((c := self.completed(codes)) >= len(codes), c), budget(timeout), 0.1)
        return count, time.monotonic()

    def flow_times(self, codes: list[str]) -> list:
        """One row per completed complaint of `codes`, from reporting's read model in one
        query: complaint_id, received (acceptance), routed (complaint_routed's occurred_at),
        notified (unit_notified_at), counted (when reporting recorded the unit's
        notification_sent); routed / counted are None while reporting lacks that event, and the
        first one counts if there are several. Read once per phase by latencies and hops."""
        stmt = text(
            "SELECT f.complaint_id, f.received_at AS received, min(r.occurred_at) AS routed, "
            "f.unit_notified_at AS notified, min(n.recorded_at) AS counted "
            "FROM complaint_facts f "
            "LEFT JOIN events r ON r.correlation_id = f.complaint_id "
            "AND r.event_type = 'complaint_routed' "
            "LEFT JOIN events n ON n.correlation_id = f.complaint_id "
            "AND n.event_type = 'notification_sent' AND n.data->>'audience' = 'unit' "
            "WHERE f.tracking_code IN :codes AND f.unit_notified_at IS NOT NULL "
            "AND f.received_at IS NOT NULL "
            "GROUP BY f.complaint_id, f.received_at, f.unit_notified_at"
        ).bindparams(bindparam("codes", expanding=True))
        with self.reporting.connect() as conn:
            return conn.execute(stmt, {"codes": codes}).all()

    @staticmethod
    def latencies(facts: list) -> tuple[list[float], list[float]]:
        """(acceptance -> unit notification sent, acceptance -> reporting counted it), s, over
        the rows of flow_times whose notification_sent reporting has recorded."""
        rows = [r for r in facts if r.counted is not None]
        return ([(r.notified - r.received).total_seconds() for r in rows],
                [(r.counted - r.received).total_seconds() for r in rows])

    def hops(self, facts: list) -> dict[str, dict]:
        """Where acceptance -> unit notified went, hop by hop (p50/p95/p99 ms each), over the
        rows of flow_times: `to_routed` acceptance -> routing decided (intake's commit, relay,
        routing's consumer and transaction), `to_planned` -> notification planned the unit's
        delivery (routing's relay, notification's consumer and plan), `to_sent` -> that
        delivery was sent (send slot, provider, mark-sent transaction). Times are each
        service's own clock (one machine here)."""
        rows = {r.complaint_id: (r.received, r.routed, r.notified)
                for r in facts if r.routed is not None}
        if not rows:
            return {}
        planned = text(
            "SELECT complaint_id, min(created_at) FROM deliveries WHERE audience = 'unit' "
            "AND complaint_id IN :ids GROUP BY complaint_id"
        ).bindparams(bindparam("ids", expanding=True))
        engine = create_engine(self.urls["notification"], pool_size=1, max_overflow=0)
        try:
            with engine.connect() as conn:
                plans = dict(conn.execute(planned, {"ids": list(rows)}).all())
        finally:
            engine.dispose()
        routed, plan, sent = [], [], []
        for cid, (received, routed_at, notified) in rows.items():
            routed.append((routed_at - received).total_seconds())
            if cid in plans:
                plan.append((plans[cid] - routed_at).total_seconds())
                sent.append((notified - plans[cid]).total_seconds())
        return {"to_routed": latency_summary(routed), "to_planned": latency_summary(plan),
                "to_sent": latency_summary(sent)}

    def dead_letters(self, vhost: Vhost) -> dict[str, int]:
        return {
            name: q.get("messages", 0) for name, q in vhost.queues().items()
            if name.endswith(".dead") and q.get("messages", 0)
        }

    def pending_deliveries(self) -> int:
        engine = create_engine(self.urls["notification"], pool_size=1)
        with engine.connect() as conn:
            n = conn.execute(
                text("SELECT count(*) FROM deliveries WHERE status = 'pending'")).scalar()
        engine.dispose()
        return n

    def queued_messages(self, vhost: Vhost) -> int:
        return sum(q.get("messages", 0) or 0 for name, q in vhost.queues().items()
                   if not name.endswith(".dead"))

    def outbox_backlog(self) -> dict[str, int]:
        out = {}
        for svc in ("intake", "routing", "notification"):
            engine = create_engine(self.urls[svc], pool_size=1)
            with engine.connect() as conn:
                out[svc] = conn.execute(
                    text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar()
            engine.dispose()
        return out


    def wait_quiet(self, vhost: Vhost, timeout: float) -> tuple[bool, float]:
        """Wait until the previous phase's work is done: no message queued (dead letters
        aside), no delivery pending, no outbox row unpublished. A phase completes when the unit
        is notified; what follows it (complainant messages, intake's status updates, the
        reporting of it) would otherwise run during the next phase and be measured as its
        latency. (quiet?, seconds waited)."""
        started = time.monotonic()
        quiet, _ = wait_until(
            lambda: (self.queued_messages(vhost) == 0 and self.pending_deliveries() == 0
                     and not any(self.outbox_backlog().values()), None),
            budget(timeout), 1.0)
        return quiet, round(time.monotonic() - started, 1)


class BacklogWatcher:
    """Samples, every `interval` s, the messages waiting in each queue of the vhost and the
    deliveries pending in notification: the largest backlog shows which stage limits the flow."""

    def __init__(self, vhost: Vhost, cluster: DumasCluster, interval: float = 2.0):
        import threading

        self.vhost, self.cluster, self.interval = vhost, cluster, interval
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BacklogWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                sample = {name: q.get("messages", 0) or 0
                          for name, q in self.vhost.queues().items()
                          if ".retry." not in name and not name.startswith("rpc")}
                sample["notification: pending deliveries"] = self.cluster.pending_deliveries()
                for name, n in sample.items():
                    self.peaks[name] = max(self.peaks.get(name, 0), n)
            self._stop.wait(self.interval)

    def top(self, n: int = 6) -> dict[str, int]:
        ranked = sorted(self.peaks.items(), key=lambda kv: -kv[1])
        return {k: v for k, v in ranked[:n] if v}


def bench_dumas(cfg: dict, vhost: Vhost, dbs: Databases, free_port) -> dict:
    cluster = DumasCluster(vhost.uri, dbs, free_port)
    out: dict = {}
    try:
        cluster.start()
        pids = {name: p.pid for name, p in cluster.procs.items()}
        loader = cluster.loader()
        warm = loader.closed_loop(100, 8)
        cluster.wait_completed([s.key for s in warm.accepted], 60)
        # What each process spends doing nothing (timers, outbox polls): subtracted from the
        # CPU per complaint, which is otherwise inflated by however long a phase waited.
        idle = idle_cpu_rates(cluster.procs, 5.0)
        out["idle_cpu_ms_per_s"] = {k: round(v * 1000, 2) for k, v in idle.items()}
        with RssWatcher(pids) as rss:
            # -- maximum load
            log("dumas: max load")
            machine = MachineCpu({u.rsplit("/", 1)[1]: svc for svc, u in cluster.urls.items()})
            cpu0, t0, m0 = cpu_snapshot(cluster.procs), time.monotonic(), machine.snapshot()
            with BacklogWatcher(vhost, cluster) as backlog:
                res = loader.closed_loop(cfg["max_load_complaints"],
                                         cfg["max_load_concurrency"], cfg["max_load_seconds"])
                codes = [s.key for s in res.accepted]
                # Saturated from the first POST until the drain ends (all completed, or the
                # cap): completions in that window over its length.
                count, drained = cluster.wait_completed(codes, cfg["max_load_drain"])
            cpu1, m1 = cpu_snapshot(cluster.procs), machine.snapshot()
            out["max_load"] = {
                "submitted": len(res.submissions),
                "errors": res.errors,
                "completed": count,
                "all_completed": count == len(codes),
                "window_seconds": round(drained - res.started, 1),
                "accept_per_s": round(len(res.accepted) / (res.finished - res.started), 1),
                "completed_per_s": round(count / (drained - res.started), 1),
                "cpu_seconds": cpu_delta(cpu0, cpu1),
                "cpu_ms_per_complaint": cpu_per_complaint(
                    cpu_delta(cpu0, cpu1), idle, time.monotonic() - t0, count),
                # database, broker, load generator and the whole machine (all cores)
                "machine_cpu_ms_per_complaint": machine.per_item(m0, m1, count),
                # largest backlog seen per queue (and notification's pending deliveries)
                "backlog_peaks": backlog.top(),
            }
            log(f"dumas: max load {out['max_load']['completed_per_s']}/s")
            # -- fixed offered loads
            out["latency"] = []
            for rate in cfg["latency_rates"] if "latency" in cfg["dumas_parts"] else []:
                if out_of_time(cfg["latency_seconds"] + 60):
                    log(f"dumas: no time left for {rate}/s; skipped")
                    continue
                quiet, settled = cluster.wait_quiet(vhost, cfg["settle"])
                log(f"dumas: latency at {rate}/s (previous work settled in {settled} s"
                    f"{'' if quiet else ', NOT quiet'})")
                cpu0, t0, m0 = cpu_snapshot(cluster.procs), time.monotonic(), machine.snapshot()
                res = loader.open_loop(rate, cfg["latency_seconds"])
                codes = [s.key for s in res.accepted]
                count, _ = cluster.wait_completed(codes, cfg["latency_drain"])
                cpu = cpu_per_complaint(cpu_delta(cpu0, cpu_snapshot(cluster.procs)), idle,
                                        time.monotonic() - t0, count)
                used = machine.per_item(m0, machine.snapshot(), count)
                facts = cluster.flow_times(codes)
                notified, counted = cluster.latencies(facts)
                out["latency"].append({
                    "offered_per_s": rate,
                    "settled_before_s": settled,
                    "quiet_before": quiet,
                    "achieved_offered_per_s": round(
                        len(res.submissions) / (res.finished - res.started), 1),
                    "errors": res.errors,
                    "accepted": len(codes),
                    "completed": count,
                    # percentiles are over completed complaints; any not completed within the
                    # drain cap took longer than it (so p99 is a lower bound if this is > 1 %)
                    "not_completed_within_drain": len(codes) - count,
                    "http_p99_ms": ms(percentile([s.finished - s.started
                                                  for s in res.submissions], 99)),
                    "to_unit_notified": latency_summary(notified),
                    "to_reporting_counted": latency_summary(counted),
                    "hops": cluster.hops(facts),
                    # below saturation: the cleanest CPU cost per complaint
                    "cpu_ms_per_complaint": cpu,
                    "machine_cpu_ms_per_complaint": used,
                })
            # -- burst
            if "burst" not in cfg["dumas_parts"]:
                pass
            elif out_of_time(60):
                log("dumas: no time left for the burst; skipped")
            else:
                quiet, settled = cluster.wait_quiet(vhost, cfg["settle"])
                log(f"dumas: previous work settled in {settled} s{'' if quiet else ', NOT quiet'}")
                bench_burst(cfg, cluster, loader, vhost, out)
        out["processes"] = {}
        for name, p in cluster.procs.items():
            s = proc_sample(p.pid)
            out["processes"][name] = {
                "cpu_seconds_total": round(s.cpu_seconds, 2),
                "peak_rss_mb": round(s.peak_rss_mb, 1),
                "max_rss_at_load_mb": round(rss.max_rss[name], 1),
            }
        return out
    finally:
        cluster.stop()
        import shutil

        shutil.rmtree(cluster.var_dir, ignore_errors=True)


def bench_burst(cfg: dict, cluster: DumasCluster, loader: Loader, vhost: Vhost, out: dict):
    """As many complaints as fast as possible: errors, time to drain, nothing lost."""
    log(f"dumas: burst of {cfg['burst']}")
    res = loader.closed_loop(cfg["burst"], cfg["burst_concurrency"],
                             max(10.0, DEADLINE[0] - time.monotonic() - 90))
    codes = [s.key for s in res.accepted]
    # The burst gets whatever is left of the time budget (minus the shutdown).
    count, drained = cluster.wait_completed(
        codes, max(30.0, DEADLINE[0] - time.monotonic() - 45))
    out["burst"] = {
        "complaints": cfg["burst"],
        "submitted": len(res.submissions),  # fewer only if the time budget ran out
        "accepted": len(codes),
        "errors": res.errors,
        "error_kinds": res.error_kinds(),
        "accept_seconds": round(res.finished - res.started, 2),
        "drain_seconds": round(drained - res.started, 2),
        "completed": count,
        "completed_per_s": round(count / (drained - res.started), 1),
    }
    burst = out["burst"]
    burst["dead_letters"] = cluster.dead_letters(vhost)
    burst["outbox_backlog"] = cluster.outbox_backlog()
    burst["pending_deliveries"] = cluster.pending_deliveries()
    burst["queued_messages"] = cluster.queued_messages(vhost)
    missing = burst["accepted"] - count
    # Lost = accepted but nowhere any more: not completed and nothing left in flight.
    in_flight = (sum(burst["outbox_backlog"].values()) + burst["pending_deliveries"]
             + burst["queued_messages"])
    burst["not_completed_in_time"] = missing
    # Every accepted complaint completed: nothing lost (messages still queued then are other
    # events, e.g. the complainant's notification_sent on its way to reporting).
    burst["lost"] = 0 if missing == 0 else (missing if in_flight == 0 else None)


# =========================================================================== 5. routing


def bench_routing(cfg: dict) -> dict:
    from services.routing.domain.registry import synthetic_registry
    from services.routing.domain.rules import ComplaintFacts, decide

    facts = []
    for i in range(64):
        kind = i % 4
        facts.append(ComplaintFacts(
            complaint_id=str(uuid.UUID(int=i)),
            category=["nikah_rujuk", "pendidikan_madrasah", "layanan_umum", "nikah_rujuk"][kind]
            if kind != 3 else "nikah_rujuk",
            description=DESCRIPTION if kind != 1 else
            "Pungutan di MAN 1 Kepahiang untuk seragam terlalu mahal, mohon ditinjau.",
            kecamatan_code=KECAMATAN[i % len(KECAMATAN)] if kind != 2 else None,
        ))
    out = {}
    for n in cfg["routing_units"]:
        registry = synthetic_registry(n)
        for f in facts:  # warm caches
            decide(f, registry)
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            for i in range(cfg["routing_decisions"]):
                decide(facts[i % len(facts)], registry)
            runs.append((time.perf_counter() - t0) / cfg["routing_decisions"])
        out[str(n)] = {"units": len(registry), "us_per_decision": round(min(runs) * 1e6, 2),
                       "median_us": round(statistics.median(runs) * 1e6, 2)}
    base = out[str(cfg["routing_units"][0])]["us_per_decision"]
    for v in out.values():
        v["ratio_to_smallest"] = round(v["us_per_decision"] / base, 2)
    return out


# =========================================================================== 6. reporting


def bench_stats(cfg: dict, dbs: Databases) -> dict:
    """reporting's statistics over N complaints, as reporting stores them.

    `services.reporting.commands.generate` fills a migrated reporting database server-side
    (generate_series): N complaints over 1,000 units and two years, channel / category /
    confidentiality drawn independently per complaint (the daily cube then holds about one row
    per complaint), the daily cube, its roll-ups, VACUUM ANALYZE. `commands.bench` then times
    `handlers.stats` as the service calls it for typical periods and filter combinations: the
    first call on a new connection (cold) and p50 / p95 over repeats (warm).
    """
    from services.cli import SERVICES_DIR
    from services.reporting import commands
    from shared.migrate import upgrade

    n = cfg["stats_rows"]
    url = dbs.create("reporting_stats")
    upgrade(SERVICES_DIR / "reporting" / "migrations", url)
    loaded = commands.generate(url, n, facts=False)
    log(f"reporting: {n:,} complaints loaded in {loaded['load_seconds']} s, roll-ups in "
        f"{loaded['rollup_seconds']} s")
    cases = commands.bench(url, repeat=cfg.get("stats_repeat", 15))
    for name, c in cases.items():
        log(f"  {name:<40} {c['plan']:<8} cold {c['cold_ms']:>7} ms  p50 {c['p50_ms']:>7} ms  "
            f"p95 {c['p95_ms']:>7} ms  ({c['total']:,} complaints)")
    p50s = [c["p50_ms"] for c in cases.values()]
    return {
        "complaints": n,
        "rows": loaded["rows"],
        "counter_rows": loaded["rows"]["daily_stats"],
        "load_seconds": loaded["load_seconds"],
        "rollup_seconds": loaded["rollup_seconds"],
        "cases": cases,
        "query_ms_median": cases["all time, no filter"]["p50_ms"],
        "worst_p50_ms": max(p50s),
        "worst_p95_ms": max(c["p95_ms"] for c in cases.values()),
        "worst_cold_ms": max(c["cold_ms"] for c in cases.values()),
        "total_reported": cases["all time, no filter"]["total"],
        "stats_function": "services.reporting.handlers.stats (commands.bench_cases)",
    }


# =========================================================================== report


def ratios(results: dict) -> None:
    ceiling = results.get("ceiling", {})
    base = results.get("baseline", {})
    dumas = results.get("dumas", {})
    r = {}
    base_tput = base.get("completed_per_s")
    pub = ceiling.get("publish_confirm_each_per_s")
    if dumas.get("max_load"):
        d = dumas["max_load"]["completed_per_s"]
        if base_tput:
            r["dumas_vs_baseline_throughput"] = round(d / base_tput, 2)
        if pub:
            r["dumas_vs_ceiling_publish"] = round(d / pub, 3)
        if ceiling.get("publish_confirm_batch_per_s"):
            r["dumas_vs_ceiling_batch_publish"] = round(
                d / ceiling["publish_confirm_batch_per_s"], 3)
    if base_tput and pub:
        r["baseline_vs_ceiling_publish"] = round(base_tput / pub, 3)
    if dumas.get("burst") and base_tput:
        r["burst_drain_vs_baseline_throughput"] = round(
            dumas["burst"]["completed_per_s"] / base_tput, 2)
    base_lat = (base.get("latency") or {}).get("p99_ms")
    for row in dumas.get("latency", []):
        p99 = row["to_unit_notified"]["p99_ms"]
        if base_lat and p99 and row["offered_per_s"] == 50:
            r["dumas_vs_baseline_p99_at_50"] = round(p99 / base_lat, 2)
    results["ratios"] = r


def parts(cpu: dict) -> str:
    """`MachineCpu.per_item` as one cell: `postgres 5.9 (intake 1.2, ...) rabbitmq 3.1 ...`."""
    pg = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in cpu.items() if k.startswith("postgres:"))
    rest = " ".join(f"{k} {v}" for k, v in cpu.items() if not k.startswith("postgres"))
    return f"postgres {cpu.get('postgres')} ({pg}) {rest}"


def table(results: dict) -> str:
    rows = []

    def add(what, value, target=""):
        rows.append((what, "-" if value is None else str(value), target))

    c = results.get("ceiling", {})
    add("ceiling: publish, confirm each (msg/s)", c.get("publish_confirm_each_per_s"))
    add("ceiling: publish, confirm per 200 (msg/s)", c.get("publish_confirm_batch_per_s"))
    add("ceiling: consume, manual ack (msg/s)", c.get("consume_ack_per_s"))
    b = results.get("baseline", {})
    add("baseline 3-hop: completed/s at max load", b.get("completed_per_s"))
    if b.get("latency"):
        add("baseline 3-hop: p50/p99 ms at 50/s",
            f"{b['latency']['p50_ms']} / {b['latency']['p99_ms']}")
    if b.get("processes"):
        add("baseline a/b/c: peak RSS MB; CPU s at max load",
            " / ".join(str(p["peak_rss_mb"]) for p in b["processes"].values())
            + "; " + " / ".join(str(v) for v in b.get("cpu_seconds", {}).values()))
    if b.get("machine_cpu_ms_per_flow"):
        add("baseline: CPU ms per flow elsewhere", parts(b["machine_cpu_ms_per_flow"]))
    d = results.get("dumas", {})
    ratio = results.get("ratios", {})
    if d.get("max_load"):
        m = d["max_load"]
        add("Dumas: completed/s at max load", m["completed_per_s"], ">= 1.0x baseline")
        add("Dumas: ratio to baseline", ratio.get("dumas_vs_baseline_throughput"),
            ">= 1.0 (1.5)")
        add("Dumas: ratio to ceiling publish", ratio.get("dumas_vs_ceiling_publish"))
        add("Dumas: HTTP accepted/s at max load", m["accept_per_s"])
        per = m.get("cpu_ms_per_complaint", {})
        if per:
            add("Dumas: CPU ms per complaint, all services",
                f"{round(sum(per.values()), 1)} (baseline: {b.get('cpu_ms_per_flow')} per flow)")
        if m.get("machine_cpu_ms_per_complaint"):
            add("Dumas: CPU ms per complaint elsewhere", parts(m["machine_cpu_ms_per_complaint"]))
        if m.get("backlog_peaks"):
            add("Dumas: largest backlogs at max load",
                ", ".join(f"{k} {v}" for k, v in list(m["backlog_peaks"].items())[:3]))
    for row in d.get("latency", []):
        n = row["to_unit_notified"]
        k = row["to_reporting_counted"]
        add(f"Dumas @{row['offered_per_s']}/s: unit notified p50/p95/p99 ms",
            f"{n['p50_ms']} / {n['p95_ms']} / {n['p99_ms']}",
            "p99 <= 100" if row["offered_per_s"] == 50 else "")
        settled = row.get("settled_before_s")
        add(f"Dumas @{row['offered_per_s']}/s: counted p99 ms; errors; done/accepted",
            f"{k['p99_ms']}; {row['errors']}; {row['completed']}/{row['accepted']}"
            + ("" if settled is None else
               f" (started {settled} s after the previous phase"
               f"{'' if row.get('quiet_before') else ', not quiet'})"))
        if row.get("hops"):
            add(f"Dumas @{row['offered_per_s']}/s: hops p50/p99 ms",
                ", ".join(f"{k} {v['p50_ms']}/{v['p99_ms']}" for k, v in row["hops"].items()))
        if row.get("cpu_ms_per_complaint"):
            cpu = row["cpu_ms_per_complaint"]
            add(f"Dumas @{row['offered_per_s']}/s: CPU ms/complaint " + "/".join(cpu),
                " / ".join(str(v) for v in cpu.values()) + f" (sum {round(sum(cpu.values()), 1)})")
        if row.get("machine_cpu_ms_per_complaint"):
            add(f"Dumas @{row['offered_per_s']}/s: CPU ms/complaint elsewhere",
                parts(row["machine_cpu_ms_per_complaint"]))
    if d.get("burst"):
        bu = d["burst"]
        left = bu["not_completed_in_time"]
        lost = bu["lost"] if bu["lost"] is not None else f"? ({left} still in flight)"
        add(f"burst {bu['complaints']}: errors / lost", f"{bu['errors']} / {lost}", "0 / 0")
        add("burst: submitted / accepted / completed (s to accept)",
            f"{bu['submitted']} / {bu['accepted']} / {bu['completed']} ({bu['accept_seconds']})",
            "all, if the time budget allows")
        add("burst: drain s (completed/s)", f"{bu['drain_seconds']} ({bu['completed_per_s']})",
            "full-flow speed")
        add("burst: dead letters / outbox backlog",
            f"{sum(bu['dead_letters'].values())} / {sum(bu['outbox_backlog'].values())}", "0 / 0")
    for n, v in results.get("routing", {}).items():
        add(f"routing decide, {int(n):,} units (us)",
            f"{v['us_per_decision']} (x{v['ratio_to_smallest']})",
            "<= 1.2x of 10 units" if n == "100000" else "")
    s = results.get("reporting_stats")
    if s:
        add(f"reporting stats over {s['complaints']:,} complaints, all time p50 (ms)",
            s["query_ms_median"], "<= 200")
        add(f"reporting stats, worst of {len(s['cases'])} cases: p50 / p95 / cold (ms)",
            f"{s['worst_p50_ms']} / {s['worst_p95_ms']} / {s['worst_cold_ms']}", "<= 200")
    for name, p in d.get("processes", {}).items():
        cpu = d.get("max_load", {}).get("cpu_ms_per_complaint", {}).get(name)
        add(f"{name}: peak RSS MB; CPU s total; CPU ms/complaint",
            f"{p['peak_rss_mb']}; {p['cpu_seconds_total']}; {cpu}", "RSS <= 150")
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    lines = [f"{'what':<{width}}  {'measured':<{vwidth}}  target", "-" * (width + vwidth + 20)]
    lines += [f"{a:<{width}}  {b:<{vwidth}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def machine() -> dict:
    info = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        info["memory_mb"] = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller numbers (~2-3 min)")
    parser.add_argument("--only", default="ceiling,baseline,dumas,routing,stats",
                        help="comma-separated phases (default: all)")
    parser.add_argument("--dumas-parts", default="max,latency,burst",
                        help="parts of the dumas phase (default: all; max load always runs)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--label", default="", help="free text stored with the results")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="time budget: waits are cut short to end by then "
                             "(default 780, 420 with --quick)")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    cfg["dumas_parts"] = args.dumas_parts.split(",")
    phases = set(args.only.split(","))
    from services.supervisor import free_ports

    used: set[int] = set()

    def free_port() -> int:
        while True:
            port = free_ports(1)[0]
            if port not in used:
                used.add(port)
                return port

    results: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "config": cfg,
        "note": "loopback only; broker, database, services and load generator share the cores",
    }
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so databases and the vhost are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t_start = time.monotonic()
    DEADLINE[0] = t_start + (args.max_seconds or (420 if args.quick else 780))
    WORK.mkdir(parents=True, exist_ok=True)
    vhost = Vhost()
    dbs = Databases()
    try:
        # Phases without services first, while the machine is quietest.
        if "ceiling" in phases:
            log("ceiling: raw kombu publish/consume")
            results["ceiling"] = bench_ceiling(vhost.uri, cfg["ceiling_messages"])
        if "routing" in phases:
            log("routing: decision time")
            results["routing"] = bench_routing(cfg)
        if "stats" in phases:
            log(f"reporting: statistics over {cfg['stats_rows']:,} complaints")
            results["reporting_stats"] = bench_stats(cfg, dbs)
        if "baseline" in phases:
            log("baseline: naive 3-hop nameko pipeline")
            results["baseline"] = bench_baseline(cfg, vhost.uri, dbs, free_port)
        if "dumas" in phases:
            log("dumas: the four services")
            results["dumas"] = bench_dumas(cfg, vhost, dbs, free_port)
    finally:
        dbs.close()
        vhost.close()
    results["duration_seconds"] = round(time.monotonic() - t_start, 1)
    ratios(results)
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print(f"\n{results['machine']['cores']} cores; {results['duration_seconds']} s; "
          f"results in {out}")
    with contextlib.suppress(ImportError):
        from bench.chart import chart

        png = chart(results, WORK / "results.png")  # under var/: never committed by accident
        print(f"chart: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
