"""Run the four Dumas services as `nameko run` processes.

    python -m services.supervisor run      # foreground, prefixed output, Ctrl-C stops all
    python -m services.supervisor up       # background, returns once every /health answers 200
    python -m services.supervisor down     # stop what `up` started
    python -m services.supervisor status   # pid and health of each service

Standard library only: it must run before anything else is known to work, and the e2e test
harness (tests/e2e/harness.py) reuses `ServiceProcess` and the helpers below.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
# The venv's bin directory (nameko lives beside the interpreter running us).
BIN_DIR = Path(sys.executable).parent

SERVICES: tuple[str, ...] = ("intake", "routing", "notification", "reporting")
DEFAULT_PORTS: dict[str, int] = {
    "intake": 8001,
    "routing": 8002,
    "notification": 8003,
    "reporting": 8004,
}
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_VAR_DIR = "var"

CONNECT_TIMEOUT = 2.0
STOP_TIMEOUT = 15.0
HEALTH_TIMEOUT = 60.0
MIGRATE_TIMEOUT = 300.0
POLL_INTERVAL = 0.2

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNREACHABLE = 2

BROKER_HINT = (
    "start one with 'rabbitmq-server -detached' (local) or 'docker compose up -d rabbitmq'"
)
POSTGRES_HINT = (
    "start it with 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' "
    "(local) or 'docker compose up -d postgres'"
)

# ANSI colours for the service-name prefix of `run` (only when stdout is a terminal).
COLORS: dict[str, str] = {
    "intake": "\033[36m",  # cyan
    "routing": "\033[33m",  # yellow
    "notification": "\033[35m",  # magenta
    "reporting": "\033[32m",  # green
}
RESET = "\033[0m"


class SupervisorError(Exception):
    """A failure to report to the operator as one message, without a traceback."""

    exit_code = EXIT_FAILED


class DependencyUnreachable(SupervisorError):
    exit_code = EXIT_UNREACHABLE


class MigrationError(SupervisorError):
    pass


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Endpoint:
    """Where a dependency listens: a TCP host/port, or a unix socket path."""

    host: str
    port: int
    unix_socket: str | None = None

    def __str__(self) -> str:
        return self.unix_socket or f"{self.host}:{self.port}"


def parse_amqp_uri(uri: str) -> Endpoint:
    """Host and port of an AMQP URI; defaults follow the AMQP spec (5672, 5671 for amqps)."""
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("amqp", "amqps", "pyamqp"):
        raise ValueError(f"not an AMQP URI: {uri!r}")
    default_port = 5671 if parts.scheme == "amqps" else 5672
    try:
        port = parts.port or default_port
    except ValueError as exc:  # a port that is not a number
        raise ValueError(f"bad port in AMQP URI {redact_url(uri)!r}") from exc
    return Endpoint(host=unquote(parts.hostname or "localhost"), port=port)


def parse_postgres_url(url: str) -> Endpoint | None:
    """Endpoint of a PostgreSQL URL, or None for any other database (SQLite needs no server)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        return None
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ValueError(f"bad port in database URL {redact_url(url)!r}") from exc
    host = unquote(parts.hostname or "")
    query_host = parse_qs(parts.query).get("host", [""])[0]
    if not host and query_host:
        host = query_host
    if not host or host.startswith("/"):
        directory = host or "/var/run/postgresql"
        return Endpoint(host="", port=port, unix_socket=f"{directory}/.s.PGSQL.{port}")
    return Endpoint(host=host, port=port)


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def database_url(env: Mapping[str, str], service: str) -> str:
    return env.get(f"{service.upper()}_DATABASE_URL") or f"sqlite:///var/{service}.sqlite3"


def http_address(env: Mapping[str, str], service: str) -> tuple[str, int]:
    """(host, port) to reach a service's HTTP server from this machine."""
    raw = env.get(f"{service.upper()}_HTTP_ADDRESS") or f"0.0.0.0:{DEFAULT_PORTS[service]}"
    host, _, port = raw.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a listening address, we only connect
        host = "127.0.0.1"
    return host, int(port)


def health_url(env: Mapping[str, str], service: str) -> str:
    host, port = http_address(env, service)
    return f"http://{host}:{port}/health"


def var_dir(env: Mapping[str, str]) -> Path:
    """DUMAS_VAR_DIR, relative to the repository root like the services' own cwd."""
    return ROOT / (env.get("DUMAS_VAR_DIR") or DEFAULT_VAR_DIR)


def build_env(
    overrides: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for the services: `base` (default os.environ) plus `overrides`."""
    env = dict(os.environ if base is None else base)
    env.update(overrides or {})
    env["EVENTLET_TESTS"] = "1"  # silences eventlet's deprecation warning at every start
    env["PYTHONUNBUFFERED"] = "1"  # so prefixed/log output appears line by line
    return env


# --------------------------------------------------------------------------- pre-flight


def tcp_reachable(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_reachable(path: str, timeout: float = CONNECT_TIMEOUT) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def reachable(endpoint: Endpoint, timeout: float = CONNECT_TIMEOUT) -> bool:
    if endpoint.unix_socket:
        return unix_reachable(endpoint.unix_socket, timeout)
    return tcp_reachable(endpoint.host, endpoint.port, timeout)


def broker_unreachable_message(endpoint: Endpoint) -> str:
    return f"RabbitMQ tidak dapat dihubungi di {endpoint} — {BROKER_HINT}"


def postgres_unreachable_message(endpoint: Endpoint, services: Iterable[str]) -> str:
    names = ", ".join(services)
    return f"PostgreSQL tidak dapat dihubungi di {endpoint} ({names}) — {POSTGRES_HINT}"


def check_broker(env: Mapping[str, str], timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when the broker accepts TCP connections, else a one-line message."""
    uri = env.get("AMQP_URI") or DEFAULT_AMQP_URI
    try:
        endpoint = parse_amqp_uri(uri)
    except ValueError as exc:
        return f"AMQP_URI tidak valid: {exc}"
    if reachable(endpoint, timeout):
        return None
    return broker_unreachable_message(endpoint)


def check_databases(
    env: Mapping[str, str], services: Iterable[str] = SERVICES, timeout: float = CONNECT_TIMEOUT
) -> list[str]:
    """One message per unreachable PostgreSQL server among the services' database URLs."""
    by_endpoint: dict[Endpoint, list[str]] = {}
    messages = []
    for service in services:
        try:
            endpoint = parse_postgres_url(database_url(env, service))
        except ValueError as exc:
            messages.append(f"{service.upper()}_DATABASE_URL tidak valid: {exc}")
            continue
        if endpoint is not None:
            by_endpoint.setdefault(endpoint, []).append(service)
    for endpoint, names in by_endpoint.items():
        if not reachable(endpoint, timeout):
            messages.append(postgres_unreachable_message(endpoint, names))
    return messages


def preflight(env: Mapping[str, str], services: Iterable[str] = SERVICES) -> None:
    """Check the broker and databases, then create DUMAS_VAR_DIR; raise on the first problem."""
    message = check_broker(env)
    if message:
        raise DependencyUnreachable(message)
    messages = check_databases(env, services)
    if messages:
        raise DependencyUnreachable("\n".join(messages))
    var_dir(env).mkdir(parents=True, exist_ok=True)


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_migrations(
    env: Mapping[str, str],
    python: str | os.PathLike[str] | None = None,
    log_path: Path | None = None,
    timeout: float = MIGRATE_TIMEOUT,
) -> str:
    """`python -m services.cli migrate`; returns its output, raises MigrationError on failure."""
    command = [str(python or sys.executable), "-m", "services.cli", "migrate"]
    try:
        result = subprocess.run(  # noqa: S603 - fixed command, our own interpreter
            command,
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output if isinstance(exc.output, str) else ""
        raise MigrationError(
            f"Migration did not finish within {timeout:.0f} s: {' '.join(command)}\n"
            f"{tail(output, 30)}"
        ) from exc
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(result.stdout)
    if result.returncode != 0:
        raise MigrationError(
            f"Migration failed (exit {result.returncode}): {' '.join(command)}\n"
            f"{tail(result.stdout, 30)}"
        )
    return result.stdout


# --------------------------------------------------------------------------- processes


def pid_exists(pid: int) -> bool:
    """True if `pid` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        # state is the field after the parenthesised command name
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def pid_cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def health_code(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of GET `url`, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


_PR_SET_PDEATHSIG = 1


def _parent_death_hook():
    """A preexec_fn asking Linux to SIGTERM the child when the supervisor dies, or None.

    libc is loaded here, in the parent: between fork and exec only the call itself is safe
    (the `run` command has output threads, so importing anything in the child could deadlock).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


class ServiceProcess:
    """One `nameko run` process of a Dumas service.

    Either started here (`start`) or adopted from a pid file (`from_pid_file`) to stop or
    inspect a process that an earlier `up` started.
    """

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_path: Path | None = None,
        *,
        pid_path: Path | None = None,
        bin_dir: Path | None = None,
        cwd: Path = ROOT,
    ) -> None:
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICES)}")
        self.name = name
        self.env = dict(env)
        self.log_path = log_path
        self.pid_path = pid_path
        self.bin_dir = bin_dir or BIN_DIR
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def __repr__(self) -> str:
        return f"<ServiceProcess {self.name} pid={self.pid}>"

    # --- facts

    @property
    def command(self) -> list[str]:
        return [
            str(self.bin_dir / "nameko"),
            "run",
            "--config",
            f"services/{self.name}/config.yaml",
            f"services.{self.name}.service",
        ]

    @property
    def health_url(self) -> str:
        return health_url(self.env, self.name)

    @property
    def port(self) -> int:
        return http_address(self.env, self.name)[1]

    def is_alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.pid is not None and pid_exists(self.pid)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def health(self, timeout: float = 2.0) -> int | None:
        return health_code(self.health_url, timeout)

    # --- lifecycle

    def start(self, *, output: str = "log", die_with_parent: bool = False) -> ServiceProcess:
        """Start the service.

        output="log": stdout+stderr appended to `log_path`, new session (survives us; `up`).
        output="pipe": stdout+stderr on `self.popen.stdout` for the caller to read (`run`).
        The child always gets its own session so a terminal's Ctrl-C reaches only the
        supervisor, which then stops the children in order.
        die_with_parent (Linux): the child gets SIGTERM when the thread that started it ends,
        so a killed `run` or test session leaves no service behind.
        """
        if self.is_alive():
            raise SupervisorError(f"{self.name} is already running (pid {self.pid})")
        if output == "pipe":
            stdout = subprocess.PIPE
        elif output == "log":
            if self.log_path is None:
                raise ValueError("output='log' needs a log_path")
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            stdout = self.log_path.open("ab")
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            stdout.write(f"===== {self.name} starting at {started} =====\n".encode())
            stdout.flush()
        else:
            raise ValueError(f"output must be 'log' or 'pipe', not {output!r}")
        try:
            self.popen = subprocess.Popen(  # noqa: S603 - fixed command from our own venv
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_parent_death_hook() if die_with_parent else None,
            )
        except FileNotFoundError as exc:
            raise SupervisorError(
                f"cannot start {self.name}: {self.command[0]} not found (run 'make venv')"
            ) from exc
        finally:
            if stdout is not subprocess.PIPE:
                stdout.close()
        self.pid = self.popen.pid
        if self.pid_path is not None:
            self.pid_path.parent.mkdir(parents=True, exist_ok=True)
            self.pid_path.write_text(f"{self.pid}\n")
        return self

    @classmethod
    def from_pid_file(
        cls, name: str, env: Mapping[str, str], pid_path: Path, log_path: Path | None = None
    ) -> ServiceProcess:
        """The process recorded in `pid_path`; `pid` is None when the file is missing or stale."""
        proc = cls(name, env, log_path, pid_path=pid_path)
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_path.read_text().strip())
            cmdline = pid_cmdline(pid)
            # a recycled pid belonging to another program must never be signalled
            if pid_exists(pid) and (cmdline is None or f"services.{name}.service" in cmdline):
                proc.pid = pid
        return proc

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the service (its whole process group: it leads its own session)."""
        if self.pid is None or not self.is_alive():
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the process to exit; True if it did."""
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.is_alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM, wait up to `timeout`, then SIGKILL. True if it stopped gracefully."""
        graceful = True
        if self.is_alive():
            self.kill(signal.SIGTERM)
            if not self.wait(timeout):
                graceful = False
                self.kill(signal.SIGKILL)
                self.wait(5.0)
        self.forget_pid()
        return graceful

    def forget_pid(self) -> None:
        if self.pid_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pid_path.unlink()

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT) -> bool:
        """Poll /health until it answers 200; False on timeout or if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.health(timeout=1.0) == 200:
                return True
            if not self.is_alive() or time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None:
            return ""
        try:
            with self.log_path.open(errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines))
        except FileNotFoundError:
            return ""


def wait_all_healthy(
    procs: Iterable[ServiceProcess], timeout: float = HEALTH_TIMEOUT
) -> ServiceProcess | None:
    """Poll until every service answers 200; return the first one that did not, or None."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending:
        pending = [p for p in pending if p.health(timeout=1.0) != 200]
        if not pending:
            return None
        dead = [p for p in pending if not p.is_alive()]
        if dead:
            return dead[0]
        if time.monotonic() >= deadline:
            return pending[0]
        time.sleep(POLL_INTERVAL)
    return None


def stop_all(procs: Iterable[ServiceProcess], timeout: float = STOP_TIMEOUT) -> list[str]:
    """SIGTERM all at once, wait up to `timeout` in total, SIGKILL stragglers; names killed."""
    procs = list(procs)
    for proc in procs:
        proc.kill(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    killed = []
    for proc in procs:
        if not proc.wait(max(0.0, deadline - time.monotonic())):
            proc.kill(signal.SIGKILL)
            proc.wait(5.0)
            killed.append(proc.name)
        proc.forget_pid()
    return killed


def ports_in_use(env: Mapping[str, str], services: Iterable[str]) -> list[str]:
    """Messages for services whose HTTP port already accepts connections."""
    busy = []
    for service in services:
        host, port = http_address(env, service)
        if tcp_reachable(host, port, timeout=0.5):
            busy.append(f"port {port} of {service} is already in use (is 'make run' running?)")
    return busy


def _ephemeral_port_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports that are free now, for services started a little later.

    Chosen below the kernel's ephemeral range: a port the OS hands out for `bind(0)` is also
    what outgoing connections use as their source port, and one of those can take it in the
    seconds before the service binds (seen as rare "Address already in use" in tests).
    """
    high = _ephemeral_port_floor()
    low = max(1024, min(20000, high - 2000))
    rng = random.SystemRandom()
    ports: list[int] = []
    for _ in range(count * 200):
        if len(ports) == count:
            return ports
        port = rng.randrange(low, high)
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        ports.append(port)
    raise SupervisorError(f"no {count} free ports between {low} and {high}")


# --------------------------------------------------------------------------- output


def prefix_width(names: Iterable[str] = SERVICES) -> int:
    return max(len(n) for n in names)


def format_prefix(name: str, width: int, color: bool) -> str:
    label = f"{name:<{width}} |"
    if color:
        return f"{COLORS.get(name, '')}{label}{RESET} "
    return f"{label} "


def prefix_line(name: str, line: str, width: int, color: bool) -> str:
    """One output line of a service, prefixed with its padded name; always ends with \\n."""
    return f"{format_prefix(name, width, color)}{line.rstrip(chr(10)).rstrip(chr(13))}\n"


class PrefixedOutput:
    """Copies each child's output line by line to `stream`, prefixed with the service name."""

    def __init__(self, stream=None, width: int | None = None, color: bool | None = None):
        self.stream = stream or sys.stdout
        self.width = width or prefix_width()
        self.color = self.stream.isatty() if color is None else color
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def write(self, name: str, line: str) -> None:
        with self._lock:
            self.stream.write(prefix_line(name, line, self.width, self.color))
            self.stream.flush()

    def follow(self, proc: ServiceProcess) -> None:
        assert proc.popen is not None and proc.popen.stdout is not None
        thread = threading.Thread(
            target=self._pump, args=(proc.name, proc.popen.stdout), daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _pump(self, name: str, pipe) -> None:
        with pipe:
            for raw in iter(pipe.readline, b""):
                self.write(name, raw.decode(errors="replace"))

    def join(self, timeout: float = 2.0) -> None:
        for thread in self._threads:
            thread.join(timeout)


# --------------------------------------------------------------------------- commands


def _paths(env: Mapping[str, str], service: str) -> tuple[Path, Path]:
    base = var_dir(env)
    return base / "log" / f"{service}.log", base / "run" / f"{service}.pid"


def _say(message: str, stream=None) -> None:
    print(message, file=stream or sys.stdout, flush=True)


def cmd_run(env: dict[str, str]) -> int:
    preflight(env)
    busy = ports_in_use(env, SERVICES)
    if busy:
        raise SupervisorError("\n".join(busy))
    _say("Running migrations ...")
    run_migrations(env)

    stop_requested = threading.Event()

    def request_stop(signum, _frame):
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    out = PrefixedOutput()
    procs = [ServiceProcess(name, env) for name in SERVICES]
    exit_code = EXIT_OK
    try:
        for proc in procs:
            proc.start(output="pipe", die_with_parent=True)
            out.follow(proc)
        _say(f"Started {', '.join(SERVICES)}; Ctrl-C stops them.")
        while not stop_requested.wait(POLL_INTERVAL):
            exited = [p for p in procs if not p.is_alive()]
            if exited:
                for proc in exited:
                    _say(
                        f"{proc.name} exited unexpectedly (code {proc.returncode}); "
                        "stopping the others",
                        sys.stderr,
                    )
                exit_code = EXIT_FAILED
                break
    finally:
        _say("Stopping services ...")
        killed = stop_all(procs)
        out.join()
        if killed:
            _say(f"Killed after {STOP_TIMEOUT:.0f} s: {', '.join(killed)}", sys.stderr)
    return exit_code


def cmd_up(env: dict[str, str]) -> int:
    preflight(env)
    procs = []
    to_start = []
    for name in SERVICES:
        log_path, pid_path = _paths(env, name)
        proc = ServiceProcess.from_pid_file(name, env, pid_path, log_path)
        if proc.pid is not None:
            _say(f"{name} is already running (pid {proc.pid})")
        else:
            proc.forget_pid()
            to_start.append(proc)
        procs.append(proc)
    if to_start:
        busy = ports_in_use(env, [p.name for p in to_start])
        if busy:
            raise SupervisorError("\n".join(busy))
        _say("Running migrations ...")
        run_migrations(env)
        for proc in to_start:
            proc.start(output="log")
            _say(f"{proc.name} started (pid {proc.pid}, log {proc.log_path})")
    failing = wait_all_healthy(procs, HEALTH_TIMEOUT)
    if failing is not None:
        state = "exited" if not failing.is_alive() else f"not healthy after {HEALTH_TIMEOUT:.0f} s"
        _say(f"{failing.name} {state}; last lines of {failing.log_path}:", sys.stderr)
        _say(failing.log_tail(40).rstrip("\n"), sys.stderr)
        _say("Stop the others with 'make down'.", sys.stderr)
        return EXIT_FAILED
    _say("All services healthy: " + ", ".join(f"{p.name} {p.health_url}" for p in procs))
    return EXIT_OK


def cmd_down(env: dict[str, str]) -> int:
    procs = []
    for name in SERVICES:
        log_path, pid_path = _paths(env, name)
        proc = ServiceProcess.from_pid_file(name, env, pid_path, log_path)
        if proc.pid is None:
            proc.forget_pid()  # stale or absent
        else:
            procs.append(proc)
    if not procs:
        _say("No services running.")
        return EXIT_OK
    killed = stop_all(procs)
    for proc in procs:
        how = "killed" if proc.name in killed else "stopped"
        _say(f"{proc.name} {how} (pid {proc.pid})")
    return EXIT_OK


def cmd_status(env: dict[str, str]) -> int:
    width = prefix_width()
    all_healthy = True
    for name in SERVICES:
        log_path, pid_path = _paths(env, name)
        proc = ServiceProcess.from_pid_file(name, env, pid_path, log_path)
        code = proc.health(timeout=2.0)
        all_healthy = all_healthy and code == 200
        if proc.pid is not None:
            pid = f"pid {proc.pid} alive"
        else:
            pid = "no pid file (make run?)" if code is not None else "not running"
        _say(f"{name:<{width}}  {pid:<30}  health {code or 'no answer'}  {proc.health_url}")
    return EXIT_OK if all_healthy else EXIT_FAILED


COMMANDS = {"run": cmd_run, "up": cmd_up, "down": cmd_down, "status": cmd_status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.supervisor",
        description="Run the four Dumas services (intake, routing, notification, reporting).",
    )
    parser.add_argument(
        "command",
        choices=COMMANDS,
        help="run: foreground; up: background, wait for health; down: stop; status: show",
    )
    args = parser.parse_args(argv)
    env = build_env()
    try:
        return COMMANDS[args.command](env)
    except SupervisorError as exc:
        _say(str(exc), sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
