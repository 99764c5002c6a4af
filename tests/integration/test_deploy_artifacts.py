"""The deployment files, checked by the real tools: Docker Compose's own parser, hadolint,
nginx, PostgreSQL and the shell, plus the generated RabbitMQ definitions and proxy routes
against the code they are generated from."""

import json
import os
import re
import shutil
import uuid

import pytest
import requests
import yaml
from sqlalchemy import create_engine, text
from support import databases
from support.deploy_files import (
    BIN,
    DEPLOY,
    NGINX,
    ROOT,
    load_script,
    nginx_conf,
    render_template,
    run,
)
from support.net import free_port
from support.wait import wait_for

from shared import messaging

COMPOSE = ROOT / "docker-compose.yml"
SERVICES = ("intake", "routing", "notification", "reporting")


def compose_config(*args, env_file=ROOT / ".env.example"):
    return run(BIN / "docker-compose", "--project-directory", ROOT, "-f", COMPOSE,
               "--env-file", env_file, "config", *args)


@pytest.fixture(scope="module")
def compose():
    """docker-compose.yml as Docker Compose itself resolves it (interpolated, merged)."""
    return json.loads(compose_config("--format", "json").stdout)


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_file_is_valid_for_docker_compose():
    result = compose_config("--quiet")
    assert result.returncode == 0


def test_compose_parser_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n      test: [\"CMD\", "
                                                  "\"pg_isready\"", "    helthcheck:\n      test: ["
                                                  "\"CMD\", \"pg_isready\"", 1))
    result = run(BIN / "docker-compose", "--project-directory", ROOT, "-f", broken,
                 "--env-file", ROOT / ".env.example", "config", "--quiet", check=False)
    assert result.returncode != 0
    assert "helthcheck" in result.stderr


def test_compose_runs_the_whole_system(compose):
    services = compose["services"]
    expected = {"secrets", "rabbitmq", "rabbitmq-setup", "postgres", "migrate", "backup",
                "proxy", "prometheus", "grafana", *SERVICES}
    assert expected <= set(services)
    for name in SERVICES:
        service = services[name]
        assert service["command"] == [name]
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["rabbitmq-setup"]["condition"] == \
            "service_completed_successfully"
        assert service["environment"]["DUMAS_QUEUE_TYPE"] == "quorum"
        assert service["environment"]["POSTGRES_HOST"] == "postgres"
        assert service["init"] is True
        assert "ports" not in service, f"{name} must be reached through the proxy only"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("rabbitmq", "postgres", "proxy"):
        assert services[name]["healthcheck"]["test"], name
    proxy_env = services["proxy"]["environment"]
    assert {proxy_env[f"{s.upper()}_UPSTREAM"] for s in SERVICES} == {
        "intake:8001", "routing:8002", "notification:8003", "reporting:8004"}


def test_compose_publishes_only_the_proxy_to_the_world(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if name == "proxy":
                assert port["target"] == 8080
            else:
                assert port.get("host_ip") == "127.0.0.1", f"{name} exposes {port}"


def test_compose_mounts_what_the_broker_and_monitoring_need(compose):
    def sources(name):
        return {os.path.relpath(v["source"], ROOT): v["target"]
                for v in compose["services"][name]["volumes"] if v["type"] == "bind"}

    rabbit = sources("rabbitmq")
    assert rabbit["deploy/rabbitmq/enabled_plugins"] == "/etc/rabbitmq/enabled_plugins"
    assert "rabbitmq_prometheus" in (DEPLOY / "rabbitmq/enabled_plugins").read_text()
    assert "rabbitmq_management" in (DEPLOY / "rabbitmq/enabled_plugins").read_text()
    assert sources("postgres")["deploy/postgres/init"] == "/docker-entrypoint-initdb.d"
    assert sources("prometheus")["deploy/prometheus"] == "/etc/prometheus"
    assert sources("grafana")["deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert sources("proxy")["deploy/proxy/dumas.conf.template"] == \
        "/etc/nginx/templates/default.conf.template"


SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)$")


def test_no_secret_is_written_in_the_compose_file():
    raw = yaml.safe_load(COMPOSE.read_text())
    found = []

    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                literal = isinstance(value, str) and not (
                    value == "" or value.startswith("${") or "_FILE" in str(key))
                if SECRET_NAME.search(str(key)) and literal:
                    found.append(f"{path}/{key}={value}")
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(raw)
    assert found == []
    # and with an empty .env, no secret resolves to a value: they come from the secrets volume
    resolved = json.loads(compose_config("--format", "json",
                                         env_file=os.devnull).stdout)["services"]["intake"]
    for key, value in resolved["environment"].items():
        if SECRET_NAME.search(key):
            assert not value, key


def test_env_example_documents_every_variable_the_compose_file_reads():
    used = set(re.findall(r"\$\{(\w+)(?::?-[^}]*)?\}", COMPOSE.read_text()))
    documented = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text()
                  .splitlines() if line and not line.startswith("#")}
    assert used - documented == set()


# --- the image ------------------------------------------------------------------------------------

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def test_dockerfile_passes_hadolint():
    result = run(BIN / "hadolint", "--failure-threshold", "info", DOCKERFILE, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_pinned_non_root_with_a_healthcheck():
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].endswith("AS build")
    base = next(line for line in lines if line.startswith("ARG PYTHON_IMAGE="))
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", base)
    final = lines[lines.index(froms[1]):]
    assert any(re.fullmatch(r"USER 10001:10001", line) for line in final)
    assert any(line.startswith("HEALTHCHECK ") for line in final)
    # the final stage installs nothing: no package manager, no compiler
    assert not any(re.search(r"\b(apt-get|apk|pip install|gcc|build-essential)\b", line)
                   for line in final)
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    assert all("==" in r for r in requirements if r and not r.startswith("#"))


def test_dockerignore_keeps_the_build_context_small():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" or "*" in ignore
    assert {"!services/", "!shared/", "!requirements.txt", "!deploy/docker/"} <= set(ignore)


def test_entrypoint_exports_generated_secrets_and_builds_urls(tmp_path):
    secrets_dir = tmp_path / "secrets"
    run(BIN / "python", DEPLOY / "docker/make_secrets.py", secrets_dir)
    first = {p.name: p.read_text() for p in secrets_dir.iterdir()}
    assert {"DUMAS_SESSION_SECRET", "RABBITMQ_PASSWORD", "INTAKE_DB_PASSWORD"} <= set(first)
    assert all(len(v) >= 40 for v in first.values())
    run(BIN / "python", DEPLOY / "docker/make_secrets.py", secrets_dir)
    assert {p.name: p.read_text() for p in secrets_dir.iterdir()} == first  # never regenerated

    env = {"DUMAS_SECRETS_DIR": str(secrets_dir), "POSTGRES_HOST": "postgres",
           "RABBITMQ_HOST": "rabbitmq", "DUMAS_SESSION_SECRET": "from-dotenv",
           "AMQP_URI": "", "INTAKE_DATABASE_URL": ""}
    out = run("sh", DEPLOY / "docker/entrypoint.sh", "env", env=env).stdout
    exported = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert exported["DUMAS_SESSION_SECRET"] == "from-dotenv"  # .env wins
    assert exported["RABBITMQ_PASSWORD"] == first["RABBITMQ_PASSWORD"]
    assert exported["INTAKE_DATABASE_URL"] == (
        f"postgresql+psycopg2://dumas_intake:{first['INTAKE_DB_PASSWORD']}@postgres:5432/"
        "dumas_intake")
    assert exported["AMQP_URI"] == f"amqp://dumas:{first['RABBITMQ_PASSWORD']}@rabbitmq:5672/dumas"


def test_healthcheck_script_follows_the_service_health(tmp_path, start_service):
    from services.reporting.service import ReportingService

    service = start_service(ReportingService)
    port = service.config["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1]
    env = {"DUMAS_SERVICE": "reporting", "REPORTING_HTTP_ADDRESS": f"0.0.0.0:{port}"}
    assert run(BIN / "python", DEPLOY / "docker/healthcheck.py", env=env).returncode == 0
    env["REPORTING_HTTP_ADDRESS"] = f"0.0.0.0:{free_port()}"
    assert run(BIN / "python", DEPLOY / "docker/healthcheck.py", env=env,
               check=False).returncode == 1


# --- PostgreSQL ---------------------------------------------------------------------------------


def test_postgres_init_creates_one_owned_database_per_service_that_migrates():
    prefix = f"dumas_init_{uuid.uuid4().hex[:6]}_"
    env = {"POSTGRES_USER": "postgres", "PGHOST": "127.0.0.1", "DUMAS_DB_PREFIX": prefix,
           **{f"{s.upper()}_DB_PASSWORD": f"pw-{s}" for s in SERVICES}}
    try:
        out = run("bash", DEPLOY / "postgres/init/10-dumas-databases.sh", env=env).stdout
        assert out.count("postgres init: database") == 4
        urls = {s: f"postgresql+psycopg2://{prefix}{s}:pw-{s}@127.0.0.1:5432/{prefix}{s}"
                for s in SERVICES}
        migrate_env = {f"{s.upper()}_DATABASE_URL": u for s, u in urls.items()}
        run(BIN / "python", "-m", "services.cli", "migrate", env=migrate_env, cwd=ROOT)
        for service, url in urls.items():
            engine = create_engine(url)
            with engine.connect() as conn:
                owner = conn.execute(text(
                    "SELECT tableowner FROM pg_tables WHERE tablename = 'alembic_version'"
                )).scalar()
            engine.dispose()
            assert owner == f"{prefix}{service}"
    finally:
        databases.drop_all([f"{prefix}{s}" for s in SERVICES])
        engine = create_engine(f"{databases.SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for s in SERVICES:
                conn.execute(text(f'DROP ROLE IF EXISTS "{prefix}{s}"'))
        engine.dispose()


# --- RabbitMQ definitions -----------------------------------------------------------------------


def test_rabbitmq_definitions_file_is_generated_from_the_code():
    module = load_script("rabbitmq/definitions.py")
    assert module.DEFINITIONS_FILE.read_text() == module.render(module.definitions()), (
        "deploy/rabbitmq/definitions.json is stale: "
        "run `.venv/bin/python deploy/rabbitmq/definitions.py write`")


def test_rabbitmq_definitions_match_what_the_services_declare(monkeypatch):
    monkeypatch.setenv("DUMAS_QUEUE_TYPE", "quorum")
    defs = json.loads((DEPLOY / "rabbitmq/definitions.json").read_text())
    declared = {q["name"]: q["arguments"] for q in defs["queues"]}
    expected = {}
    for service, producer, event_type in messaging.SUBSCRIPTIONS:
        queue = messaging.consumer_queue(service, producer, event_type)
        for q in (queue, *queue.companions):
            expected[q.name] = dict(q.queue_arguments or {})
    assert declared == expected
    assert {e["name"] for e in defs["exchanges"]} == {
        f"{p}.events" for _, p, _ in messaging.SUBSCRIPTIONS}
    poison = {p["pattern"]: p["definition"] for p in defs["policies"]}
    for service, _, event_type in messaging.SUBSCRIPTIONS:
        main = messaging.consumer_queue_name(service, event_type)
        policy = poison["^" + main.replace(".", r"\.") + "$"]
        assert policy["delivery-limit"] > 0
        assert policy["dead-letter-routing-key"] == messaging.dead_queue_name(main)


# --- reverse proxy --------------------------------------------------------------------------------


def test_proxy_routes_are_generated_from_the_services_routes():
    module = load_script("proxy/routes.py")
    assert module.TEMPLATE.read_text() == module.render(module.http_routes()), (
        "deploy/proxy/dumas.conf.template is stale: "
        "run `.venv/bin/python deploy/proxy/routes.py write`")


def rendered_proxy(tmp_path, upstreams: dict[str, str], port: int):
    template = (DEPLOY / "proxy/dumas.conf.template").read_text()
    values = {f"{s.upper()}_UPSTREAM": u for s, u in upstreams.items()}
    values.update(DUMAS_RESOLVER="127.0.0.1", DUMAS_PROXY_PORT=f"127.0.0.1:{port}")
    server = tmp_path / "dumas.conf"
    server.write_text(render_template(template, values))
    return nginx_conf(server, tmp_path)


@pytest.mark.skipif(not shutil.which(NGINX), reason="nginx is installed by .ci/run")
def test_proxy_config_passes_nginx_t(tmp_path):
    conf = rendered_proxy(tmp_path, {s: f"{s}:800{i + 1}" for i, s in enumerate(SERVICES)},
                          free_port())
    result = run(NGINX, "-t", "-c", conf, "-p", tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_proxy_is_one_entry_point_for_the_services(tmp_path, start_service):
    from services.intake.service import IntakeService
    from services.reporting.service import ReportingService
    from services.routing.service import RoutingService

    started = {name: start_service(cls) for name, cls in (
        ("intake", IntakeService), ("routing", RoutingService), ("reporting", ReportingService))}
    upstreams = {name: s.config["WEB_SERVER_ADDRESS"] for name, s in started.items()}
    upstreams["notification"] = f"127.0.0.1:{free_port()}"
    port = free_port()
    conf = rendered_proxy(tmp_path, upstreams, port)
    import subprocess

    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)],  # noqa: S603
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/proxy-health"), timeout=10, message="nginx up")
        assert requests.get(f"{base}/api/v1/categories", timeout=5).status_code == 200
        assert requests.get(f"{base}/api/v1/units", timeout=5).json()
        assert requests.get(f"{base}/api/v1/stats", timeout=5).status_code == 200
        missing = requests.get(f"{base}/api/v1/complaints/TIDAKADA", timeout=5)
        assert missing.status_code == 404 and missing.json()["error"]["code"]
        # internal endpoints are not public
        assert requests.get(f"{base}/metrics", timeout=5).status_code == 404
        assert requests.get(f"{base}/health", timeout=5).status_code == 404
    finally:
        nginx.terminate()
        nginx.wait(10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
