"""Start the four Dumas services as real processes for end-to-end tests.

Plain module, no conftest magic. Typical use in a test module or tests/e2e/conftest.py:

    from tests.e2e.harness import make_services  # noqa: F401  (the fixture)

    def test_complaint_reaches_reporting(make_services, amqp_uri, pg_urls):
        cluster = make_services({"AMQP_URI": amqp_uri, **pg_urls})   # migrated and healthy
        requests.post(cluster.url("intake", "/complaints"), json=...)
        cluster.kill("routing")          # SIGKILL, as a crash would
        cluster.restart("routing")       # start again, wait for /health

or without pytest fixtures:

    with ServiceCluster(env, log_dir=tmp_path / "logs") as cluster:
        ...

Each service logs to `<log_dir>/<service>.log` (restarts append), migrations to
`<log_dir>/migrate.log`; `cluster.logs()` returns their tails for a failure message.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from services.supervisor import (
    HEALTH_TIMEOUT,
    SERVICES,
    STOP_TIMEOUT,
    ServiceProcess,
    build_env,
    check_broker,
    check_databases,
    free_ports,
    health_url,
    run_migrations,
    stop_all,
    wait_all_healthy,
)


class HarnessError(RuntimeError):
    """The services could not be started; the message carries the relevant logs."""


class ServiceCluster:
    """The four services as processes, with one environment shared by all of them.

    env: the caller's settings (AMQP_URI with a private vhost, *_DATABASE_URL, ...), applied
        over os.environ; EVENTLET_TESTS=1 is always set.
    log_dir: per-test directory for the services' logs.
    unique_ports: give every service a free port on 127.0.0.1 (sets <SVC>_HTTP_ADDRESS and,
        unless the caller set it, PUBLIC_BASE_URL) so clusters never collide with `make up`.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        log_dir: Path | str = "var/e2e-logs",
        *,
        services: Iterable[str] = SERVICES,
        unique_ports: bool = False,
        health_timeout: float = HEALTH_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.services = tuple(services)
        self.log_dir = Path(log_dir)
        self.health_timeout = health_timeout
        self.stop_timeout = stop_timeout
        overrides = dict(env or {})
        if unique_ports:
            ports = free_ports(len(self.services))
            for name, port in zip(self.services, ports, strict=True):
                overrides.setdefault(f"{name.upper()}_HTTP_ADDRESS", f"127.0.0.1:{port}")
        if unique_ports and "intake" in self.services and "PUBLIC_BASE_URL" not in overrides:
            overrides["PUBLIC_BASE_URL"] = health_url(overrides, "intake").removesuffix("/health")
        self.env = build_env(overrides)
        self.procs = {
            name: ServiceProcess(name, self.env, self.log_dir / f"{name}.log")
            for name in self.services
        }

    def __enter__(self) -> ServiceCluster:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            print(self.logs(), file=sys.stderr)
        self.stop()

    # --- addresses

    def port(self, name: str) -> int:
        return self.procs[name].port

    def base_url(self, name: str) -> str:
        return self.procs[name].health_url.removesuffix("/health")

    def url(self, name: str, path: str = "/") -> str:
        return self.base_url(name) + "/" + path.lstrip("/")

    # --- lifecycle

    def check_dependencies(self) -> None:
        """Fail fast, with one line each, when the broker or a PostgreSQL server is down."""
        problems = [m for m in [check_broker(self.env)] if m]
        problems += check_databases(self.env, self.services)
        if problems:
            raise HarnessError("\n".join(problems))

    def migrate(self) -> str:
        try:
            return run_migrations(self.env, log_path=self.log_dir / "migrate.log")
        except Exception as exc:
            raise HarnessError(str(exc)) from exc

    def start(self, *, migrate: bool = True) -> ServiceCluster:
        """Check dependencies, migrate, start every service and wait for all /health = 200.

        On failure everything is stopped and HarnessError carries the failing log.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.check_dependencies()
        if migrate:
            self.migrate()
        try:
            for proc in self.procs.values():
                proc.start(output="log", die_with_parent=True)
            self._wait_healthy(self.procs.values())
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, name: str, sig: int | None = None) -> int | None:
        """SIGKILL (or `sig`) one service and wait until it is gone; returns its exit code."""
        proc = self.procs[name]
        proc.kill(signal.SIGKILL if sig is None else sig)
        if not proc.wait(self.stop_timeout):
            raise HarnessError(f"{name} still running {self.stop_timeout:.0f} s after signal")
        return proc.returncode

    def stop_service(self, name: str) -> bool:
        """SIGTERM one service (graceful), SIGKILL after the stop timeout."""
        return self.procs[name].stop(self.stop_timeout)

    def start_service(self, name: str, *, wait: bool = True) -> ServiceProcess:
        proc = self.procs[name]
        proc.start(output="log", die_with_parent=True)
        if wait:
            self._wait_healthy([proc])
        return proc

    def restart(self, name: str, *, wait: bool = True) -> ServiceProcess:
        """Start `name` again (after kill/stop_service; stops it first if it still runs)."""
        if self.procs[name].is_alive():
            self.stop_service(name)
        return self.start_service(name, wait=wait)

    def stop(self) -> list[str]:
        """Stop every service (SIGTERM, then SIGKILL after the stop timeout); idempotent."""
        return stop_all(self.procs.values(), self.stop_timeout)

    def is_healthy(self, name: str) -> bool:
        return self.procs[name].health(timeout=1.0) == 200

    def _wait_healthy(self, procs: Iterable[ServiceProcess]) -> None:
        failing = wait_all_healthy(procs, self.health_timeout)
        if failing is not None:
            state = (
                f"exited with code {failing.returncode}"
                if not failing.is_alive()
                else f"not healthy after {self.health_timeout:.0f} s at {failing.health_url}"
            )
            raise HarnessError(f"{failing.name} {state}\n{self.logs([failing.name])}")

    # --- logs

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def logs(self, names: Iterable[str] | None = None, lines: int = 80) -> str:
        """The last `lines` of each service's log, with headers, for failure output."""
        parts = []
        for name in names or self.services:
            text = self.procs[name].log_tail(lines).rstrip("\n")
            parts.append(f"----- {name} ({self.log_path(name)}) -----\n{text or '(empty)'}")
        return "\n".join(parts)


@pytest.fixture
def make_services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    """Factory fixture: `make_services(env, **ServiceCluster kwargs)` returns a started cluster.

    Unique ports by default. Every cluster is stopped at teardown; if the test failed, the
    tails of the logs are written to the terminal (logs stay under the test's tmp_path).
    """
    clusters: list[ServiceCluster] = []
    failed_before = request.session.testsfailed

    def make(env: Mapping[str, str] | None = None, **kwargs) -> ServiceCluster:
        kwargs.setdefault("unique_ports", True)
        kwargs.setdefault("log_dir", tmp_path / f"logs-{len(clusters)}")
        cluster = ServiceCluster(env, **kwargs)
        clusters.append(cluster)
        return cluster.start()

    try:
        yield make
    finally:
        # the call phase has been reported by now, so this counts a failure of this test
        test_failed = request.session.testsfailed > failed_before
        for cluster in clusters:
            if test_failed:
                _print_outside_capture(request, f"\n{request.node.nodeid}\n{cluster.logs()}")
            cluster.stop()


def _print_outside_capture(request: pytest.FixtureRequest, text: str) -> None:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    ctx = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with ctx:
        print(text, file=sys.stderr, flush=True)
