"""shared.container.DumasContainer: nameko's worker lifecycle without the per-worker costs that
nothing reads (no broker here: a do-nothing entrypoint and dependency providers)."""

import io
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import eventlet
import pytest
from nameko.containers import ServiceContainer, get_container_cls
from nameko.extensions import DependencyProvider, Entrypoint
from nameko.runners import ServiceRunner
from nameko.testing.services import entrypoint_waiter
from support.service_config import load_config
from support.wait import wait_for

from shared.container import DumasContainer
from shared.logging import JsonFormatter

SERVICES = ("intake", "routing", "notification", "reporting")
ROOT = Path(__file__).resolve().parents[2]


class Trivial(Entrypoint):
    """An entrypoint that only the test fires (container.spawn_worker)."""


trivial = Trivial.decorator


class WorkerContextOf(DependencyProvider):
    """Gives the worker its own WorkerContext (as no real provider would), to look at it."""

    def get_dependency(self, worker_ctx):
        return worker_ctx


class Recorder(DependencyProvider):
    """Implements every worker hook and writes down what it was called with."""

    def __init__(self, calls):
        self.calls = calls

    def get_dependency(self, worker_ctx):
        return self.calls

    def worker_setup(self, worker_ctx):
        self.calls.append(("setup", worker_ctx.entrypoint.method_name))

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        self.calls.append(("result", result, exc_info and exc_info[0]))

    def worker_teardown(self, worker_ctx):
        self.calls.append(("teardown",))


class Plain(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return "plain"


class Broken(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return None

    def worker_setup(self, worker_ctx):
        raise RuntimeError("worker_setup exploded")


CALLS: list = []


class Service:
    name = "svc"
    calls = Recorder(CALLS)
    plain = Plain()
    ctx = WorkerContextOf()

    @trivial
    def ok(self, value):
        self.calls.append(("method", self.plain, value))
        return value * 2

    @trivial
    def fails(self):
        self.calls.append(("method",))
        raise KeyError("kaboom")

    @trivial(expected_exceptions=ValueError)
    def refuses(self):
        raise ValueError("not like this")

    @trivial
    def context(self):
        return self.ctx

    @trivial
    def logs(self):
        logging.getLogger("dumas.test_container").warning("handled")


class BrokenService:
    name = "broken"
    broken = Broken()

    @trivial
    def ok(self):
        return 1


@pytest.fixture(autouse=True)
def nameko_at_warning():
    # as every config.yaml ships it; the tests that need DEBUG set it themselves
    logger = logging.getLogger("nameko")
    level = logger.level
    logger.setLevel(logging.WARNING)
    CALLS.clear()
    yield
    logger.setLevel(level)


@pytest.fixture
def started():
    containers = []

    def start(service_cls=Service, **config):
        container = DumasContainer(service_cls, {"AMQP_URI": "memory://", **config})
        container.start()
        containers.append(container)
        return container

    yield start
    for container in containers:
        container.kill()


def run(container, method_name, *args, context_data=None):
    """Run one worker to its end: (result, exc_info) as handed to the entrypoint."""
    entrypoint = next(e for e in container.entrypoints if e.method_name == method_name)
    done = eventlet.Event()

    def handle_result(worker_ctx, result, exc_info):
        done.send((result, exc_info))
        return result, exc_info

    container.spawn_worker(entrypoint, args, {}, context_data=context_data,
                           handle_result=handle_result)
    with eventlet.Timeout(10):
        outcome = done.wait()
        container._worker_pool.waitall()
    return outcome


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_runs_in_the_dumas_container_as_its_config_yaml_ships(service):
    import importlib

    config = load_config(service)
    module = importlib.import_module(f"services.{service}.service")
    service_cls = next(v for v in vars(module).values()
                       if isinstance(v, type) and getattr(v, "name", None) == service)
    runner = ServiceRunner(config)  # what `nameko run --config` builds
    runner.add_service(service_cls)

    assert get_container_cls(config) is DumasContainer
    assert [type(c) for c in runner.containers] == [DumasContainer]


def test_the_environment_can_put_nameko_s_own_container_back(monkeypatch):
    monkeypatch.setenv("SERVICE_CONTAINER_CLS", "nameko.containers.ServiceContainer")

    assert get_container_cls(load_config("intake")) is ServiceContainer


# -- the worker ---------------------------------------------------------------------------------


def test_a_worker_gets_its_dependencies_and_the_hooks_run_in_nameko_s_order(started):
    container = started()

    result, exc_info = run(container, "ok", 21)

    assert (result, exc_info) == (42, None)
    assert CALLS == [("setup", "ok"), ("method", "plain", 21), ("result", 42, None),
                     ("teardown",)]


def test_only_the_providers_that_implement_a_hook_are_called_for_it(started):
    container = started()
    run(container, "ok", 1)

    setup, results, teardown = container._hooked_providers()

    assert [p.attr_name for p in setup] == ["calls"]
    assert [p.attr_name for p in results] == ["calls"]
    assert [p.attr_name for p in teardown] == ["calls"]


def test_a_hook_patched_on_an_instance_before_the_start_is_called():
    container = DumasContainer(Service, {"AMQP_URI": "memory://"})
    plain = next(d for d in container.dependencies if d.attr_name == "plain")
    seen = []
    plain.worker_teardown = lambda worker_ctx: seen.append(worker_ctx.entrypoint.method_name)
    container.start()
    try:
        run(container, "ok", 1)
    finally:
        container.kill()

    assert seen == ["ok"]


def test_a_failing_worker_is_logged_as_nameko_logs_it_and_its_error_reaches_the_entrypoint(
    started, caplog
):
    container = started()

    with caplog.at_level(logging.WARNING, logger="nameko.containers"):
        result, exc_info = run(container, "fails")

    assert result is None and exc_info[0] is KeyError
    assert CALLS[-2:] == [("result", None, KeyError), ("teardown",)]
    [record] = [r for r in caplog.records if r.name == "nameko.containers"]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("error handling worker <WorkerContext [svc.fails]")
    assert record.exc_info[0] is KeyError
    assert not container._died.ready()  # a failing handler never stops the service


def test_an_expected_exception_is_logged_as_a_warning_with_its_traceback(started, caplog):
    container = started()

    with caplog.at_level(logging.WARNING, logger="nameko.containers"):
        _, exc_info = run(container, "refuses")

    assert exc_info[0] is ValueError
    [record] = [r for r in caplog.records if r.name == "nameko.containers"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("(expected) error handling worker")
    assert record.exc_info[0] is ValueError


def test_an_error_in_a_worker_hook_kills_the_container_as_nameko_does(started):
    container = started(BrokenService)
    entrypoint = next(iter(container.entrypoints))

    container.spawn_worker(entrypoint, (), {})

    with eventlet.Timeout(10), pytest.raises(RuntimeError, match="worker_setup exploded"):
        container.wait()


def test_max_workers_still_bounds_the_workers_running_at_once(started):
    gate = eventlet.Event()
    running = {"now": 0, "most": 0, "done": 0}

    class Slow:
        name = "slow"

        @trivial
        def wait(self):
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            gate.wait()
            running["now"] -= 1
            running["done"] += 1

    container = started(Slow, max_workers=3)
    entrypoint = next(iter(container.entrypoints))
    spawner = eventlet.spawn(
        lambda: [container.spawn_worker(entrypoint, (), {}) for _ in range(10)])

    wait_for(lambda: running["now"] == 3, timeout=10)
    for _ in range(10):  # let every greenthread run: a fourth worker would start now
        eventlet.sleep(0)
    assert running["most"] == 3 and not spawner.dead  # the rest wait for a free worker
    gate.send(True)
    with eventlet.Timeout(10):
        spawner.wait()
        container._worker_pool.waitall()
    assert (running["most"], running["done"]) == (3, 10)


def test_the_call_id_is_made_when_asked_and_extends_the_caller_s_stack(started):
    container = started()

    ctx, _ = run(container, "context", context_data={"call_id_stack": ["caller.go.1"],
                                                     "correlation_id": "c-9"})

    stack = ctx.context_data["call_id_stack"]
    assert stack[0] == "caller.go.1"
    assert stack[1].startswith("svc.context.") and len(stack[1]) == len("svc.context.") + 36
    assert ctx.call_id == stack[1]  # one id per worker, however often asked
    assert ctx.context_data["correlation_id"] == "c-9"


def test_the_json_log_of_a_worker_carries_its_correlation_id(started):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="svc"))
    logger = logging.getLogger("dumas.test_container")
    logger.addHandler(handler)
    try:
        run(started(), "logs", context_data={"correlation_id": "complaint-7"})
    finally:
        logger.removeHandler(handler)

    entry = json.loads(stream.getvalue())
    assert (entry["correlation_id"], entry["entrypoint"]) == ("complaint-7", "logs")


def test_with_nameko_at_debug_the_worker_runs_nameko_s_own_code(started, caplog):
    container = started()

    with caplog.at_level(logging.DEBUG, logger="nameko.containers"):
        result, _ = run(container, "ok", 2)

    assert result == 4
    messages = [r.getMessage() for r in caplog.records if r.name == "nameko.containers"]
    assert any(m.startswith("ran handler for <WorkerContext [svc.ok]") for m in messages)
    assert any(m.startswith("call stack for") for m in messages)


def test_nameko_s_entrypoint_waiter_still_sees_a_worker_end(started):
    container = started()
    entrypoint = next(e for e in container.entrypoints if e.method_name == "ok")

    with entrypoint_waiter(container, "ok", timeout=10) as waited:
        container.spawn_worker(entrypoint, (5,), {})

    assert waited.get() == 10


def test_the_first_container_started_freezes_the_startup_heap():
    """A full collection would otherwise walk every object of the service's startup (modules,
    classes, compiled schemas) each time: after the first container of a process has started,
    they are frozen (gc.freeze), once."""
    script = textwrap.dedent("""
        import gc, json
        from shared.container import DumasContainer

        class One:
            name = "one"

        class Two:
            name = "two"

        before = gc.get_freeze_count()
        first = DumasContainer(One, {})
        first.start()
        frozen = gc.get_freeze_count()
        made_later = [[] for _ in range(1000)]
        second = DumasContainer(Two, {})
        second.start()
        again = gc.get_freeze_count()
        first.stop()
        second.stop()
        print(json.dumps([before, frozen, again, gc.is_tracked(made_later)]))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    before, frozen, again, tracked = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == 0
    assert frozen > 10_000, "the process's modules and classes frozen"
    assert again == frozen, "only the first container freezes"
    assert tracked
