"""The faults of a chaos run: SIGKILL a service, take the broker away, take the databases away.

Every fault here touches only this run, except the two opt-in modes that act on the shared
servers (`--broker-outage app`, `--db-outage restart`); see docs/reliability.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from services.supervisor import tcp_reachable

HERE = Path(__file__).resolve().parent
MGMT = "http://127.0.0.1:15672"
AUTH = ("guest", "guest")


def wait_until(predicate, timeout: float, message: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {timeout:.0f} s: {message}")
        time.sleep(interval)


# --------------------------------------------------------------------------- the broker


class BrokerProxy:
    """tests/chaos/proxy.py as a process: the run's services reach RabbitMQ only through it."""

    def __init__(self, port: int, target: str, log_path: Path):
        self.port = port
        self.target = target
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "proxy.py"), "--listen", f"127.0.0.1:{self.port}",
             "--target", self.target],
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT,
        )
        wait_until(lambda: tcp_reachable("127.0.0.1", self.port, 0.5), 15,
                   "the broker relay listening")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        wait_until(lambda: not tcp_reachable("127.0.0.1", self.port, 0.5), 15,
                   "the broker relay gone")

    stop = kill


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def _management_answers() -> bool:
    try:
        return requests.get(f"{MGMT}/api/overview", auth=AUTH, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class BrokerOutage:
    """mode "proxy": the run's relay is killed (only this run loses the broker).
    mode "app": `rabbitmqctl stop_app` / `start_app` on the machine's RabbitMQ (every user of
    the broker loses it for the outage; the Erlang node keeps running)."""

    def __init__(self, mode: str, proxy: BrokerProxy | None, broker: str = "127.0.0.1:5672"):
        self.mode = mode
        self.proxy = proxy
        host, _, port = broker.rpartition(":")
        self.host, self.port = host, int(port)

    def down(self) -> None:
        if self.mode == "proxy":
            self.proxy.kill()
        else:
            rabbitmqctl("stop_app")
            wait_until(lambda: not tcp_reachable(self.host, self.port, 0.5), 30,
                       "RabbitMQ stopped listening")

    def up(self) -> None:
        if self.mode == "proxy":
            self.proxy.start()
        else:
            rabbitmqctl("start_app")
            wait_until(lambda: tcp_reachable(self.host, self.port, 0.5), 60,
                       "RabbitMQ listening again")
        wait_until(_management_answers, 60, "RabbitMQ management API")


# --------------------------------------------------------------------------- PostgreSQL


class DatabaseOutage:
    """mode "isolate" (default): this run's databases refuse connections
    (`ALTER DATABASE ... ALLOW_CONNECTIONS false`) and their sessions are ended
    (`pg_terminate_backend`), as a server restart looks from the services, while the server
    and everyone else's databases carry on.
    mode "restart": the real thing, `pg_ctlcluster <version> main stop -m fast`, then `start`
    after the outage (every user of the server is disconnected for that time)."""

    def __init__(self, mode: str, admin_url: str, database_names: list[str]):
        self.mode = mode
        self.admin_url = admin_url
        self.names = database_names

    def _admin(self):
        return create_engine(self.admin_url, isolation_level="AUTOCOMMIT", pool_size=1)

    def _cluster(self, *action: str) -> None:
        version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", *action],
                       check=True, capture_output=True, timeout=180)

    def down(self) -> None:
        if self.mode == "restart":
            self._cluster("stop", "-m", "fast")
            return
        engine = self._admin()
        try:
            with engine.connect() as conn:
                for name in self.names:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"),
                    {"names": self.names},
                )
        finally:
            engine.dispose()

    def up(self) -> None:
        if self.mode == "restart":
            self._cluster("start")
            wait_until(self._answers, 60, "PostgreSQL accepting connections again")
            return
        engine = self._admin()
        try:
            with engine.connect() as conn:
                for name in self.names:
                    conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        finally:
            engine.dispose()

    def _answers(self) -> bool:
        try:
            engine = self._admin()
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            return True
        except Exception:
            return False

    def sessions(self) -> int:
        """Sessions open on this run's databases now (0 while they are down)."""
        engine = self._admin()
        try:
            with engine.connect() as conn:
                return conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(:names) "
                         "AND pid <> pg_backend_pid()"),
                    {"names": self.names},
                ).scalar()
        finally:
            engine.dispose()
