"""The deployment files, checked by the real tools: Docker Compose's own parser, hadolint,
nginx, PostgreSQL and the shell, plus the generated RabbitMQ definitions and proxy routes
against the code they are generated from."""

import json
import os
import re
import shutil
import uuid

import pytest
import yaml
from sqlalchemy import create_engine, text
from support import databases
from support.deploy_files import (
    BIN,
    DEPLOY,
    ROOT,
    load_script,
    run,
)
from support.net import free_port

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
                "proxy", "prometheus", "grafana", "minio", "minio-setup", *SERVICES}
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
    for name in ("rabbitmq", "postgres", "proxy", "minio", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    assert services["rabbitmq"]["user"] == "999:999"
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


def test_the_replica_profile_adds_a_streaming_replica_of_the_primary():
    services = json.loads(run(
        BIN / "docker-compose", "--project-directory", ROOT, "-f", COMPOSE, "--env-file",
        ROOT / ".env.example", "--profile", "replica", "config", "--format", "json").stdout)[
        "services"]
    replica = services["postgres-replica"]
    assert replica["user"] == "postgres"
    assert replica["entrypoint"] == ["/bin/bash", "/usr/local/bin/dumas-replica.sh"]
    assert replica["environment"]["PRIMARY_HOST"] == "postgres"
    assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert replica["healthcheck"]["test"]
    # a hot standby needs max_connections >= the primary's
    primary = " ".join(services["postgres"]["command"])
    assert f"max_connections={replica['command'][-1].split('=')[1]}" in primary
    assert "wal_level=replica" in primary
    # the primary's first start creates the replication role (deploy/postgres/init/)
    assert (DEPLOY / "postgres/init/20-replication.sh").exists()
    assert "REPLICATION_PASSWORD" in services["postgres"]["environment"]
    # without the profile, no replica
    assert "postgres-replica" not in json.loads(compose_config("--format", "json").stdout)[
        "services"]


def test_attachment_storage_is_minio_with_a_bucket_made_before_the_services_start(compose):
    services = compose["services"]
    assert services["minio"]["image"].startswith("quay.io/minio/minio:RELEASE.")
    setup = services["minio-setup"]
    assert setup["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in ("intake", "routing"):
        env = services[name]["environment"]
        assert env["DUMAS_STORAGE_BACKEND"] == "s3"
        assert env["DUMAS_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["DUMAS_S3_BUCKET"] == setup["environment"]["DUMAS_S3_BUCKET"]
        assert env["DUMAS_S3_REGION"]
        assert env["DUMAS_S3_ACCESS_KEY_ID"] == env["DUMAS_S3_SECRET_ACCESS_KEY"] == ""
        assert services[name]["depends_on"]["minio-setup"]["condition"] == \
            "service_completed_successfully"
    # services that handle no attachment get no storage keys
    for name in ("notification", "reporting"):
        assert "DUMAS_S3_SECRET_ACCESS_KEY" not in services[name]["environment"]


def test_minio_setup_makes_a_private_bucket_and_a_user_limited_to_it(tmp_path):
    """deploy/minio/setup.sh against a recording stand-in for `mc` (the real client needs a
    MinIO server): what it asks of MinIO, with which credentials, and that it is idempotent."""
    secrets_dir = tmp_path / "secrets"
    run(BIN / "python", DEPLOY / "docker/make_secrets.py", secrets_dir)
    generated = {p.name: p.read_text() for p in secrets_dir.iterdir()}
    assert len(generated["DUMAS_S3_ACCESS_KEY_ID"]) == 20
    assert len(generated["DUMAS_S3_SECRET_ACCESS_KEY"]) == 40
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "mc.log"
    (bin_dir / "mc").write_text(f"""#!/bin/sh
{{ printf 'ARGS %s\\n' "$*"; printf 'HOST %s\\n' "$MC_HOST_dumas"; }} >> {log}
case "$*" in
  *"policy create"*) cp "$6" {tmp_path}/policy.json ;;
  *"user add"*) read -r secret; printf 'STDIN %s\\n' "$secret" >> {log} ;;
  *"policy attach"*)
    if [ -f {tmp_path}/attached ]; then
      echo "The specified policy change is already in effect." >&2; exit 1
    fi
    touch {tmp_path}/attached ;;
esac
""")
    (bin_dir / "mc").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DUMAS_SECRETS_DIR": str(secrets_dir),
           "MINIO_URL": "http://minio:9000", "MINIO_ROOT_USER": "dumas-admin",
           "DUMAS_S3_BUCKET": "dumas-lampiran", "MINIO_ROOT_PASSWORD": "",
           "DUMAS_S3_ACCESS_KEY_ID": "", "DUMAS_S3_SECRET_ACCESS_KEY": ""}
    for _ in range(2):  # the second run finds everything in place and still succeeds
        out = run("sh", DEPLOY / "minio/setup.sh", env=env).stdout
        assert "bucket dumas-lampiran ready" in out
    calls = log.read_text()
    key, secret = generated["DUMAS_S3_ACCESS_KEY_ID"], generated["DUMAS_S3_SECRET_ACCESS_KEY"]
    assert f"HOST http://dumas-admin:{generated['MINIO_ROOT_PASSWORD']}@minio:9000" in calls
    assert "ARGS mb --ignore-existing dumas/dumas-lampiran" in calls
    assert "ARGS anonymous set none dumas/dumas-lampiran" in calls
    assert f"ARGS admin user add dumas {key}\n" in calls and f"STDIN {secret}" in calls
    assert f"ARGS admin policy attach dumas dumas-attachments --user {key}" in calls
    assert secret not in "".join(line for line in calls.splitlines() if line.startswith("ARGS"))
    policy = json.loads((tmp_path / "policy.json").read_text())
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::dumas-lampiran", "arn:aws:s3:::dumas-lampiran/*"}
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert not any(a.startswith("admin:") or a == "s3:*" for a in actions)
    # a missing secret stops the set-up instead of creating a user without a password
    (secrets_dir / "DUMAS_S3_SECRET_ACCESS_KEY").chmod(0o000)
    failed = run("sh", DEPLOY / "minio/setup.sh", env=env, check=False)
    if os.geteuid() != 0:  # root reads the file anyway
        assert failed.returncode != 0 and "DUMAS_S3_SECRET_ACCESS_KEY" in failed.stderr


def test_prometheus_in_compose_finds_every_replica_through_docker_dns():
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus (.ci/run does)"
    result = run(promtool, "check", "config", "compose.yml", cwd=DEPLOY / "prometheus")
    assert "SUCCESS" in result.stdout
    config = yaml.safe_load((DEPLOY / "prometheus/compose.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "dumas")
    found = {(sd["names"][0], sd["port"], sd["type"]) for sd in job["dns_sd_configs"]}
    assert found == {("intake", 8001, "A"), ("routing", 8002, "A"),
                     ("notification", 8003, "A"), ("reporting", 8004, "A")}
    compose_file = yaml.safe_load(COMPOSE.read_text())
    assert "--config.file=/etc/prometheus/compose.yml" in \
        compose_file["services"]["prometheus"]["command"]


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
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}", base)
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
    # 240 bits or more, except the S3 access key id (an identifier, 20 characters as in S3)
    assert all(len(v) >= 40 for k, v in first.items() if k != "DUMAS_S3_ACCESS_KEY_ID")
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


def test_backup_dumps_every_database_restorably(tmp_path):
    """deploy/postgres/backup.sh, one run (BACKUP_ONCE=1) against this machine's PostgreSQL:
    four custom-format dumps that pg_restore can read; a database that cannot be dumped
    fails the run and leaves no partial file."""
    prefix = f"dumas_bk_{uuid.uuid4().hex[:6]}_"
    names = [f"{prefix}{s}" for s in SERVICES]
    engine = create_engine(f"{databases.SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for name in names:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        seeded = create_engine(f"{databases.SERVER}/{names[0]}")
        with seeded.begin() as conn:
            conn.execute(text("CREATE TABLE complaints (code text); "
                              "INSERT INTO complaints VALUES ('KPH-1')"))
        seeded.dispose()
        env = {"BACKUP_ONCE": "1", "BACKUP_DIR": str(tmp_path), "DUMAS_DB_PREFIX": prefix,
               "PGHOST": "127.0.0.1", "PGUSER": "postgres",
               "POSTGRES_PASSWORD_FILE": str(tmp_path / "none")}
        out = run("bash", DEPLOY / "postgres/backup.sh", env=env).stdout
        dumps = sorted(tmp_path.glob("*.dump"))
        assert [d.name.rsplit("-", 1)[0] for d in dumps] == sorted(names), out
        listing = run("pg_restore", "--list", next(d for d in dumps if names[0] in d.name)).stdout
        assert "TABLE DATA public complaints" in listing

        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{names[3]}"'))
        failed = run("bash", DEPLOY / "postgres/backup.sh", env=env, check=False)
        assert failed.returncode != 0 and f"FAILED for {names[3]}" in failed.stderr
        assert not list(tmp_path.glob("*.partial"))
    finally:
        engine.dispose()
        databases.drop_all(names)


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
