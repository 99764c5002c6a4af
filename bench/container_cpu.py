"""CPU per nameko worker: nameko's `ServiceContainer` against `shared.container.DumasContainer`.

    PYTHONPATH=. .venv/bin/python bench/container_cpu.py [--mode spawn|consumer] [--rounds 7]
        [--workers 20000] [--events 3000] [--rate PER_S] [--deps 6] [--profile DIR]

Each round runs one child process per container class, in alternating order (A,B then B,A),
so both are measured in the same minutes. Logging as the services configure it (root INFO,
`nameko` at WARNING).

- `spawn`: a service with a do-nothing entrypoint and `--deps` dependency providers that
  implement only `get_dependency` (as every Dumas provider; the services have 5-7);
  `container.spawn_worker` is called `--workers` times (20 workers at once at most, as
  `max_workers`), then the pool is drained. CPU = time.process_time of the child over the
  spawns and the drain, per worker: the container's own per-worker cost, nothing else.
- `consumer`: `shared.nameko_ext.event_consumer` with a do-nothing handler and the same
  providers, on a private vhost: `--events` complaint_received events published before the
  container starts (a backlog), or at `--rate` per second by a separate publisher process
  (each arrives alone, as below saturation). CPU per event from the container's start (or the
  first publish) to the last handled event: kombu, nameko's consumer, the contract, the ack
  and the container.

`--mode pieces` (one process, no A/B): each piece of nameko's `_run_worker` alone in a hot
loop (the timing context managers, the call id stack built for a debug message, the dropped
debug calls, the no-op worker hooks, the injection), us per worker, medians of 5 x 100,000.

`--mode batch --tree OLD --tree NEW` (session 7): A/B of code trees (each child runs with
PYTHONPATH=the tree) instead of container classes: `shared.nameko_ext.batch_event_consumer`
(`--batch` events, `--wait-ms`) with a do-nothing handler, `--events` published before the
start (a backlog) or at `--rate` by a separate publisher; per event the child's CPU and
RabbitMQ's (`beam.smp` utime+stime from /proc, from the start or first publish until every
event is handled and 0.3 s more for the last acks; the broker's CPU includes what other vhosts
cost meanwhile, so read the pairs).

`--mode rpc --tree OLD --tree NEW` (session 7): RPC calls between two processes of the tree:
a callee container (`shared.nameko_ext.rpc`, a method returning a small dict) and a caller
container whose workers make one call each through the tree's `RpcProxy` (shared.nameko_ext's
if it has one, else nameko's; `delivery_mode=1, use_confirms=False` as the services), one
after the other, `--events` calls. Per call: the caller's CPU (process_time), the callee's
and RabbitMQ's (/proc).

`--profile DIR` also writes a cProfile (process_time clock) of each class's first child to
DIR/<mode>-<class>.pstats and prints its top functions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"nameko": "nameko.containers.ServiceContainer",
           "dumas": "shared.container.DumasContainer"}


def service_class(kind: str, deps: int, on_call):
    from nameko.extensions import DependencyProvider, Entrypoint

    from shared.nameko_ext import event_consumer

    class Provider(DependencyProvider):
        def get_dependency(self, worker_ctx):
            return self

    class Trivial(Entrypoint):
        pass

    namespace = {"name": "bench"}
    for i in range(deps):
        namespace[f"dep{i}"] = Provider()
    if kind == "spawn":
        def handle(self):
            on_call(1)

        namespace["handle"] = Trivial.decorator(handle)
    else:
        def on_received(self, event):
            on_call(1)

        namespace["on_received"] = event_consumer("intake", "complaint_received")(on_received)
    return type("Bench", (), namespace)


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
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def batch_child(args) -> None:
    import eventlet

    eventlet.monkey_patch()
    from kombu import Connection
    from nameko.containers import get_container_cls

    from bench.consumer_cpu import publish
    from shared import messaging
    from shared.nameko_ext import batch_event_consumer

    configure_logging()
    done = {"n": 0}
    finished = eventlet.Event()
    total = args.events

    class Bench:
        name = "bench"

        @batch_event_consumer("intake", "complaint_received", max_batch=args.batch,
                              max_wait_ms=args.wait_ms)
        def on_received(self, events):
            done["n"] += len(events)
            if done["n"] >= total:
                finished.send(True)

    with Connection(args.amqp) as conn:
        messaging.consumer_queue("bench", "intake", "complaint_received")(
            conn.default_channel).declare()
    config = {"AMQP_URI": args.amqp, "max_workers": 20,
              "SERVICE_CONTAINER_CLS": CLASSES["dumas"]}
    container = get_container_cls(config)(Bench, config)
    publisher = None
    if args.rate:
        container.start()
        publisher = subprocess.Popen([  # noqa: S603
            sys.executable, "-m", "bench.consumer_cpu", "--role", "publisher",
            "--events", str(total), "--rate", str(args.rate), "--amqp", args.amqp],
            stdout=subprocess.PIPE, text=True)
        publisher.stdout.readline()
    else:
        publish(args.amqp, total, rate=None)
    c0, b0 = time.process_time(), beam_cpu()
    if not args.rate:
        container.start()
    if not finished.wait(timeout=120 + (total / args.rate if args.rate else 0)):
        raise SystemExit(f"only {done['n']} of {total} events handled")
    eventlet.sleep(0.3)  # the last batch's acks
    cpu, broker = time.process_time() - c0, beam_cpu() - b0
    container.stop()
    if publisher:
        publisher.wait()
    print(json.dumps({"cpu_us": round(cpu / total * 1e6, 1),
                      "broker_us": round(broker / total * 1e6, 1)}))


def rpc_callee(args) -> None:
    import eventlet

    eventlet.monkey_patch()
    from nameko.containers import get_container_cls

    from shared.nameko_ext import rpc

    configure_logging()

    def get_contacts(self, complaint_ids):
        return {cid: {"email": "warga@example.id", "phone": None} for cid in complaint_ids}

    service = type("Callee", (), {"name": "rpc_callee", "get_contacts": rpc(get_contacts)})
    config = {"AMQP_URI": args.amqp, "max_workers": 20,
              "SERVICE_CONTAINER_CLS": CLASSES["dumas"]}
    container = get_container_cls(config)(service, config)
    container.start()
    print("ready", flush=True)
    container.wait()


def rpc_caller(args) -> None:
    import eventlet

    eventlet.monkey_patch()
    from nameko.containers import get_container_cls
    from nameko.extensions import Entrypoint

    import shared.nameko_ext as ext

    configure_logging()
    proxy_cls = getattr(ext, "RpcProxy", None)
    if proxy_cls is None:
        from nameko.rpc import RpcProxy as proxy_cls

    class Trivial(Entrypoint):
        pass

    def call(self, cid):
        return self.callee.get_contacts([cid])

    service = type("Caller", (), {
        "name": "rpc_caller",
        "callee": proxy_cls("rpc_callee", delivery_mode=1, use_confirms=False),
        "call": Trivial.decorator(call)})
    config = {"AMQP_URI": args.amqp, "max_workers": 20,
              "SERVICE_CONTAINER_CLS": CLASSES["dumas"]}
    callee = subprocess.Popen([  # noqa: S603
        sys.executable, str(Path(__file__).resolve()), "--role", "rpc-callee",
        "--amqp", args.amqp], stdout=subprocess.PIPE, text=True)
    try:
        callee.stdout.readline()
        container = get_container_cls(config)(service, config)
        container.start()
        entrypoint = next(iter(container.entrypoints))

        def one(i):
            done = eventlet.Event()

            def handle_result(worker_ctx, result, exc_info):
                done.send((result, exc_info))
                return result, exc_info

            container.spawn_worker(entrypoint, (str(i),), {}, handle_result=handle_result)
            result, exc_info = done.wait()
            if exc_info or str(i) not in result:
                raise SystemExit(f"call {i} failed: {result} {exc_info}")

        for i in range(200):  # warm-up: connections, pools, the reply queue
            one(i)
        c0, p0, b0 = time.process_time(), proc_cpu(callee.pid), beam_cpu()
        for i in range(args.events):
            one(i)
        cpu, callee_cpu, broker = (time.process_time() - c0, proc_cpu(callee.pid) - p0,
                                   beam_cpu() - b0)
        container.stop()
    finally:
        callee.terminate()
        callee.wait()
    n = args.events
    print(json.dumps({"cpu_us": round(cpu / n * 1e6, 1),
                      "callee_us": round(callee_cpu / n * 1e6, 1),
                      "broker_us": round(broker / n * 1e6, 1)}))


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_ab(args) -> None:
    from bench.infra import Vhost

    results: dict[str, list[dict]] = {tree: [] for tree in args.tree}
    for round_no in range(args.rounds):
        order = args.tree if round_no % 2 == 0 else list(reversed(args.tree))
        for tree in order:
            vhost = Vhost()
            try:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "child",
                       "--mode", args.mode, "--events", str(args.events), "--amqp", vhost.uri,
                       "--batch", str(args.batch), "--wait-ms", str(args.wait_ms)]
                if args.rate:
                    cmd += ["--rate", str(args.rate)]
                env = {**os.environ, "PYTHONPATH": tree, "EVENTLET_TESTS": "1"}
                out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,  # noqa: S603
                                     text=True, check=True, timeout=600).stdout
            finally:
                vhost.close()
            results[tree].append(json.loads(out.strip().splitlines()[-1]))
            print(round_no, tree, results[tree][-1], flush=True)
    summary = {tree: {key: {"values": [r[key] for r in runs],
                            "median": statistics.median(r[key] for r in runs)}
                      for key in runs[0]}
               for tree, runs in results.items()}
    if len(args.tree) == 2:
        a, b = (results[t] for t in args.tree)
        summary["pairs_b_minus_a"] = {
            key: [round(y[key] - x[key], 1) for x, y in zip(a, b, strict=True)]
            for key in a[0]}
    print(json.dumps({"mode": args.mode, "rate": args.rate, "batch": args.batch,
                      "wait_ms": args.wait_ms, **summary}, indent=2))


def configure_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    for name in ("nameko", "kombu", "amqp"):
        logging.getLogger(name).setLevel(logging.WARNING)


def child(args) -> None:
    import eventlet

    eventlet.monkey_patch()
    import cProfile

    from nameko.containers import get_container_cls

    configure_logging()
    done = {"n": 0}
    finished = eventlet.Event()
    total = args.workers if args.mode == "spawn" else args.events

    def count(n):
        done["n"] += n
        if done["n"] >= total:
            finished.send(True)

    config = {"AMQP_URI": args.amqp or "memory://", "max_workers": 20,
              "SERVICE_CONTAINER_CLS": CLASSES[args.cls]}
    cls = get_container_cls(config)
    container = cls(service_class(args.mode, args.deps, count), config)
    profiler = cProfile.Profile(time.process_time) if args.profile else None

    if args.mode == "spawn":
        entrypoint = next(iter(container.entrypoints))
        container.started = True  # nothing to start: no extension does I/O
        for _ in range(500):  # warm-up
            container.spawn_worker(entrypoint, (), {})
        container._worker_pool.waitall()
        done["n"] = 0
        finished = eventlet.Event()
        c0, t0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for _ in range(total):
            container.spawn_worker(entrypoint, (), {})
        container._worker_pool.waitall()
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        assert done["n"] == total, done
    else:
        from kombu import Connection

        from bench.consumer_cpu import publish
        from shared import messaging

        with Connection(args.amqp) as conn:
            messaging.consumer_queue("bench", "intake", "complaint_received")(
                conn.default_channel).declare()
        if not args.rate:
            publish(args.amqp, total, rate=None)
        publisher = None
        if args.rate:
            container.start()
            publisher = subprocess.Popen([  # noqa: S603
                sys.executable, "-m", "bench.consumer_cpu", "--role", "publisher",
                "--events", str(total), "--rate", str(args.rate), "--amqp", args.amqp],
                stdout=subprocess.PIPE, text=True, cwd=ROOT)
            publisher.stdout.readline()  # "ready": publishing starts now
        c0, t0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        if not args.rate:
            container.start()
        if not finished.wait(timeout=120 + (total / args.rate if args.rate else 0)):
            raise SystemExit(f"only {done['n']} of {total} events handled")
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        container.stop()
        if publisher:
            publisher.wait()
    if profiler:
        profiler.dump_stats(args.profile)
    print(json.dumps({"cpu_us": round(cpu / total * 1e6, 2), "per_s": round(total / wall),
                      "class": type(container).__name__}))


def pieces(deps: int, n: int = 100_000, rounds: int = 5) -> None:
    import eventlet

    eventlet.monkey_patch()
    import logging

    from nameko.containers import ServiceContainer, WorkerContext, _log, _log_time

    configure_logging()
    service_cls = service_class("spawn", deps, lambda n: None)
    container = ServiceContainer(service_cls, {"AMQP_URI": "memory://"})
    entrypoint = next(iter(container.entrypoints))
    assert not _log.isEnabledFor(logging.DEBUG)

    def contexts():
        return [WorkerContext(container, service_cls(), entrypoint, (), {}) for _ in range(n)]

    def timers_3(ctxs):  # ran worker, ran handler, tore down worker
        for ctx in ctxs:
            with _log_time("ran worker %s", ctx):
                with _log_time("ran handler for %s", ctx):
                    pass
                with _log_time("tore down worker %s", ctx):
                    pass

    def timer_handle_result(ctxs):  # the fourth, when the entrypoint passes handle_result
        for ctx in ctxs:
            with _log_time("handled result for %s", ctx):
                pass

    def call_id_stack(ctxs):
        for ctx in ctxs:
            _log.debug("call stack for %s: %s", ctx, "->".join(ctx.call_id_stack))

    def debug_calls(ctxs):
        for ctx in ctxs:
            _log.debug("spawning %s", ctx)
            _log.debug("setting up %s", ctx)
            _log.debug("calling handler for %s", ctx)
            _log.debug("handling result for %s", ctx)
            _log.debug("signalling result for %s", ctx)

    def no_op_hooks(ctxs):
        for ctx in ctxs:
            container._worker_setup(ctx)
            container._worker_result(ctx, None, None)
            container._worker_teardown(ctx)

    def injection(ctxs):
        for ctx in ctxs:
            container._inject_dependencies(ctx)

    def empty(ctxs):
        for _ in ctxs:
            pass

    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        for fn in (empty, timers_3, timer_handle_result, call_id_stack, debug_calls,
                   no_op_hooks, injection):
            ctxs = contexts()
            c0 = time.process_time()
            fn(ctxs)
            results.setdefault(fn.__name__, []).append((time.process_time() - c0) / n * 1e6)
    loop = statistics.median(results.pop("empty"))
    print(json.dumps({name: round(statistics.median(v) - loop, 2)
                      for name, v in results.items()}, indent=2))


def print_profile(path: str, limit: int = 25) -> None:
    import pstats

    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(limit)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="main")
    parser.add_argument("--mode", choices=("spawn", "consumer", "pieces", "batch", "rpc"),
                        default="spawn")
    parser.add_argument("--cls", choices=tuple(CLASSES), default="nameko")
    parser.add_argument("--workers", type=int, default=20000)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, help="events per second (default: a backlog)")
    parser.add_argument("--deps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile")
    parser.add_argument("--amqp")
    parser.add_argument("--tree", action="append", default=[],
                        help="--mode batch: a code tree to measure (PYTHONPATH); give two")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--wait-ms", type=float, default=250)
    args = parser.parse_args(argv)
    if args.role == "rpc-callee":
        rpc_callee(args)
        return 0
    if args.role == "child" and args.mode == "rpc":
        rpc_caller(args)
        return 0
    if args.role == "child" and args.mode == "batch":
        batch_child(args)
        return 0
    if args.role == "child":
        child(args)
        return 0
    if args.mode == "pieces":
        pieces(args.deps)
        return 0
    sys.path.insert(0, str(ROOT))
    if args.mode in ("batch", "rpc"):
        batch_ab(args)
        return 0
    from bench.infra import Vhost

    results: dict[str, list[float]] = {name: [] for name in CLASSES}
    profiled: set[str] = set()
    for round_no in range(args.rounds):
        order = list(CLASSES) if round_no % 2 == 0 else list(reversed(CLASSES))
        for name in order:
            vhost = Vhost() if args.mode == "consumer" else None
            try:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--role", "child",
                       "--mode", args.mode, "--cls", name, "--workers", str(args.workers),
                       "--events", str(args.events), "--deps", str(args.deps)]
                if vhost:
                    cmd += ["--amqp", vhost.uri]
                if args.rate:
                    cmd += ["--rate", str(args.rate)]
                if args.profile and name not in profiled:
                    os.makedirs(args.profile, exist_ok=True)
                    cmd += ["--profile", f"{args.profile}/{args.mode}-{name}.pstats"]
                env = {**os.environ, "PYTHONPATH": str(ROOT), "EVENTLET_TESTS": "1"}
                out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,  # noqa: S603
                                     text=True, check=True, timeout=600).stdout
            finally:
                if vhost:
                    vhost.close()
            result = json.loads(out.strip().splitlines()[-1])
            if args.profile and name not in profiled:
                profiled.add(name)  # a profiled run is slower: not counted
                print(name, "profiled", result, flush=True)
                print_profile(f"{args.profile}/{args.mode}-{name}.pstats")
                continue
            results[name].append(result["cpu_us"])
            print(round_no, name, result, flush=True)
    summary = {}
    for name, values in results.items():
        summary[name] = {"cpu_us": values, "median": statistics.median(values),
                         "min": min(values), "max": max(values)}
    a, b = summary["nameko"]["median"], summary["dumas"]["median"]
    summary["saved_pct_of_median"] = round((a - b) / a * 100, 1)
    print(json.dumps({"mode": args.mode, "rate": args.rate, "deps": args.deps, **summary},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
