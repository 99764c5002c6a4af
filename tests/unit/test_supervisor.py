"""Unit tests of services.supervisor: settings parsing, pre-flight messages, output prefixing,
and process handling against a fake `nameko` (no broker, no database)."""

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # works without an editable install or a conftest
    sys.path.insert(0, str(ROOT))

from services import supervisor  # noqa: E402
from services.supervisor import (  # noqa: E402
    SERVICES,
    Endpoint,
    PrefixedOutput,
    ServiceProcess,
    check_broker,
    check_databases,
    parse_amqp_uri,
    parse_postgres_url,
    prefix_line,
    stop_all,
)


@pytest.fixture
def closed_port():
    """A port that refuses connections: bound by us, never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def free_port():
    return supervisor.free_ports(1)[0]


def wait_until(condition, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", Endpoint("127.0.0.1", 5672)),
        ("amqp://guest:guest@rabbit/dumas_test_1", Endpoint("rabbit", 5672)),
        ("amqp://user:p%40ss@broker.example:5673/%2F", Endpoint("broker.example", 5673)),
        ("amqps://broker.example/", Endpoint("broker.example", 5671)),
        ("amqp://", Endpoint("localhost", 5672)),
    ],
)
def test_amqp_uri_gives_host_and_port_with_protocol_defaults(uri, expected):
    assert parse_amqp_uri(uri) == expected


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5672/", "amqp://host:notaport/"])
def test_malformed_amqp_uri_is_rejected(uri):
    with pytest.raises(ValueError):
        parse_amqp_uri(uri)


def test_malformed_amqp_uri_is_reported_as_one_line_not_a_traceback():
    message = check_broker({"AMQP_URI": "amqp://guest:secret@host:x/"})
    assert message.startswith("AMQP_URI tidak valid")
    assert "secret" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://dumas@127.0.0.1:5433/intake", Endpoint("127.0.0.1", 5433)),
        ("postgresql+psycopg2://dumas:pw@db/intake", Endpoint("db", 5432)),
        ("postgres://db.internal/routing", Endpoint("db.internal", 5432)),
        (
            "postgresql:///intake?host=/tmp/pg",
            Endpoint("", 5432, unix_socket="/tmp/pg/.s.PGSQL.5432"),
        ),
    ],
)
def test_postgres_url_gives_the_server_endpoint(url, expected):
    assert parse_postgres_url(url) == expected


@pytest.mark.parametrize("url", ["sqlite:///var/intake.sqlite3", "sqlite://"])
def test_sqlite_url_needs_no_server(url):
    assert parse_postgres_url(url) is None


def test_sqlite_defaults_need_no_database_check():
    assert check_databases({}) == []


def test_one_message_per_unreachable_postgres_server_naming_its_services(closed_port):
    url = f"postgresql://dumas:pw@127.0.0.1:{closed_port}/x"
    env = {"INTAKE_DATABASE_URL": url, "ROUTING_DATABASE_URL": url}

    messages = check_databases(env)

    assert len(messages) == 1
    assert f"127.0.0.1:{closed_port}" in messages[0]
    assert "intake, routing" in messages[0]
    assert "pg_ctlcluster" in messages[0]


def test_listening_address_on_all_interfaces_is_reached_on_loopback():
    env = {"ROUTING_HTTP_ADDRESS": "0.0.0.0:9102"}
    assert supervisor.health_url(env, "routing") == "http://127.0.0.1:9102/health"
    assert supervisor.health_url({}, "reporting") == "http://127.0.0.1:8004/health"


def test_child_environment_silences_eventlet_and_keeps_caller_settings():
    env = supervisor.build_env({"AMQP_URI": "amqp://x/"}, base={"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "AMQP_URI": "amqp://x/",
        "EVENTLET_TESTS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def test_passwords_are_redacted_from_urls():
    assert supervisor.redact_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert supervisor.redact_url("sqlite:///var/x.sqlite3") == "sqlite:///var/x.sqlite3"


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    ports = supervisor.free_ports(8)
    assert len(set(ports)) == 8
    assert all(1024 <= port < supervisor._ephemeral_port_floor() for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------- pre-flight


def test_unreachable_broker_is_one_line_saying_how_to_start_it(closed_port, tmp_path):
    env = dict(
        os.environ,
        AMQP_URI=f"amqp://guest:guest@127.0.0.1:{closed_port}/",
        DUMAS_VAR_DIR=str(tmp_path / "var"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "services.supervisor", "run"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"RabbitMQ tidak dapat dihubungi di 127.0.0.1:{closed_port}" in lines[0]
    assert "rabbitmq-server -detached" in lines[0]
    assert "docker compose up -d rabbitmq" in lines[0]
    assert not (tmp_path / "var").exists()  # nothing is done before the broker check


def test_broker_that_accepts_connections_passes_the_check():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert check_broker({"AMQP_URI": f"amqp://guest:guest@127.0.0.1:{port}/"}) is None


# --------------------------------------------------------------------------- output


def test_output_lines_are_prefixed_with_the_padded_service_name():
    width = supervisor.prefix_width()
    assert width == len("notification")
    assert prefix_line("intake", "ready\n", width, color=False) == "intake       | ready\n"
    assert prefix_line("notification", "x\r\n", width, color=False) == "notification | x\n"


def test_colored_prefix_resets_the_color_after_the_name():
    line = prefix_line("routing", "hello", 12, color=True)
    assert line.startswith(supervisor.COLORS["routing"] + "routing      |")
    assert line.endswith(supervisor.RESET + " hello\n")


def test_every_service_has_its_own_color():
    assert len({supervisor.COLORS[name] for name in SERVICES}) == len(SERVICES)


def test_no_color_when_output_is_not_a_terminal():
    stream = io.StringIO()
    out = PrefixedOutput(stream)
    out.write("reporting", "started")
    assert stream.getvalue() == "reporting    | started\n"


# --------------------------------------------------------------------------- processes

FAKE_NAMEKO = """\
    #!{python}
    # Stands in for `nameko run --config services/<svc>/config.yaml services.<svc>.service`.
    import http.server, os, signal, sys
    name = sys.argv[-1].split(".")[1]
    host, port = os.environ[name.upper() + "_HTTP_ADDRESS"].rsplit(":", 1)
    if os.environ.get("FAKE_CRASH"):
        sys.exit("fake nameko: crashed on purpose")
    if os.environ.get("FAKE_IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    print(name, "listening on", port, "args", " ".join(sys.argv[1:]), flush=True)
    http.server.HTTPServer((host, int(port)), Health).serve_forever()
"""


@pytest.fixture
def fake_bin(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "nameko"
    script.write_text(textwrap.dedent(FAKE_NAMEKO).format(python=sys.executable))
    script.chmod(0o755)
    return bin_dir


def make_proc(fake_bin, tmp_path, name="intake", **env):
    env = supervisor.build_env({f"{name.upper()}_HTTP_ADDRESS": f"127.0.0.1:{free_port()}", **env})
    return ServiceProcess(
        name,
        env,
        tmp_path / "log" / f"{name}.log",
        pid_path=tmp_path / "run" / f"{name}.pid",
        bin_dir=fake_bin,
    )


def test_service_process_runs_the_contract_command(fake_bin, tmp_path):
    proc = make_proc(fake_bin, tmp_path, "routing")
    assert proc.command == [
        str(fake_bin / "nameko"),
        "run",
        "--config",
        "services/routing/config.yaml",
        "services.routing.service",
    ]


def test_service_is_healthy_survives_sigkill_restart_and_stops_gracefully(fake_bin, tmp_path):
    proc = make_proc(fake_bin, tmp_path)
    try:
        proc.start(output="log", die_with_parent=True)
        assert proc.pid_path.read_text().strip() == str(proc.pid)
        assert proc.wait_healthy(timeout=15), proc.log_tail()

        proc.kill(signal.SIGKILL)
        assert proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert not proc.is_alive()

        proc.start(output="log")
        assert proc.wait_healthy(timeout=15), proc.log_tail()
        assert proc.stop(timeout=10) is True
        assert not proc.is_alive()
        assert not proc.pid_path.exists()
        log = proc.log_path.read_text()
        assert log.count("intake listening on") == 2  # a restart appends to the same log
        assert "run --config services/intake/config.yaml services.intake.service" in log
    finally:
        proc.kill(signal.SIGKILL)


def test_stragglers_that_ignore_sigterm_are_killed(fake_bin, tmp_path):
    proc = make_proc(fake_bin, tmp_path, "reporting", FAKE_IGNORE_SIGTERM="1")
    try:
        proc.start(output="log")
        # healthy means its SIGTERM handler is in place
        assert proc.wait_healthy(timeout=15), proc.log_tail()

        assert stop_all([proc], timeout=0.5) == ["reporting"]
        assert not proc.is_alive()
    finally:
        proc.kill(signal.SIGKILL)


def test_a_service_that_exits_is_not_reported_healthy(fake_bin, tmp_path):
    proc = make_proc(fake_bin, tmp_path, FAKE_CRASH="1")
    proc.start(output="log")
    assert proc.wait_healthy(timeout=15) is False
    assert not proc.is_alive()
    assert "crashed on purpose" in proc.log_tail()


def test_piped_output_of_a_service_is_copied_with_its_prefix(fake_bin, tmp_path):
    proc = make_proc(fake_bin, tmp_path, "notification")
    stream = io.StringIO()
    out = PrefixedOutput(stream)
    try:
        proc.start(output="pipe")
        out.follow(proc)
        assert wait_until(lambda: "listening on" in stream.getvalue()), stream.getvalue()
    finally:
        stop_all([proc], timeout=10)
        out.join()
    assert stream.getvalue().startswith("notification | notification listening on ")


def test_pid_file_of_another_program_is_never_adopted(tmp_path):
    pid_path = tmp_path / "intake.pid"
    pid_path.write_text(f"{os.getpid()}\n")  # alive, but this is pytest, not nameko
    proc = ServiceProcess.from_pid_file("intake", {}, pid_path)
    assert proc.pid is None
    assert not proc.is_alive()


def test_adopted_process_is_stopped_through_its_pid_file(fake_bin, tmp_path):
    started = make_proc(fake_bin, tmp_path)
    try:
        started.start(output="log")
        assert started.wait_healthy(timeout=15), started.log_tail()

        adopted = ServiceProcess.from_pid_file("intake", started.env, started.pid_path)
        assert adopted.pid == started.pid
        assert adopted.stop(timeout=10) is True
        assert wait_until(lambda: not started.is_alive())
        assert not started.pid_path.exists()
    finally:
        started.kill(signal.SIGKILL)


def test_unknown_service_is_refused():
    with pytest.raises(ValueError, match="unknown service"):
        ServiceProcess("billing", {})
