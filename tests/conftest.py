# eventlet must patch the standard library before anything else imports it (NAMEKO-NOTES trap 1).
import os

os.environ.setdefault("EVENTLET_TESTS", "1")  # silences eventlet's deprecation banner

import eventlet  # noqa: E402

eventlet.monkey_patch()

import pytest  # noqa: E402
from sqlalchemy import MetaData  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402
from support import amqp, databases  # noqa: E402
from support.net import free_port  # noqa: E402

from services.cli import SERVICES_DIR  # noqa: E402
from shared.db import make_engine, outbox_table  # noqa: E402
from shared.migrate import upgrade  # noqa: E402


@pytest.fixture
def vhost():
    """A private RabbitMQ virtual host for one test, deleted afterwards."""
    name = amqp.create_vhost()
    try:
        yield name
    finally:
        amqp.delete_vhost(name)


@pytest.fixture
def amqp_uri(vhost):
    return amqp.uri_for(vhost)


@pytest.fixture(scope="session")
def pg_templates():
    """One migrated (and seeded) PostgreSQL template database per service, for the session."""
    templates = databases.create_templates()
    try:
        yield templates
    finally:
        databases.drop_all(templates.values())


@pytest.fixture
def pg_urls(pg_templates):
    """Fresh PostgreSQL databases for every service, copied from the migrated templates."""
    urls = databases.clone_all(pg_templates)
    try:
        yield urls
    finally:
        databases.drop_all(urls.values())


@pytest.fixture(params=["postgresql", "sqlite"])
def intake_db_url(request, tmp_path):
    """A migrated intake database: a clone of the PostgreSQL template, or a fresh SQLite file."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_urls")["intake"]
    url = f"sqlite:///{tmp_path}/intake.sqlite3"
    upgrade(SERVICES_DIR / "intake" / "migrations", url)
    return url


@pytest.fixture
def pg_outbox_store(pg_urls):
    """An outbox table on PostgreSQL (intake's fresh database): (engine, table, sessionmaker),
    the `store` the helpers of support/outbox.py take."""
    engine = make_engine(pg_urls["intake"])
    yield engine, outbox_table(MetaData()), sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def service_config(amqp_uri, pg_urls, tmp_path):
    """nameko config for one service under test: private vhost, fresh database, free port."""

    def make(service: str, **overrides) -> dict:
        config = {
            "AMQP_URI": amqp_uri,
            "DATABASE_URL": pg_urls.get(service, "sqlite:///:memory:"),
            "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
            "PUBLIC_BASE_URL": "http://dumas.test",
            "DUMAS_VAR_DIR": str(tmp_path),
            "max_workers": 10,
        }
        config.update(overrides)
        return config

    return make


class RunningService:
    """A started nameko container with a requests session on its HTTP address."""

    def __init__(self, container, config):
        import requests

        self.container = container
        self.config = config
        self.base_url = f"http://{config['WEB_SERVER_ADDRESS']}"
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def get(self, path: str, **kw):
        return self.http.get(self.url(path), timeout=10, **kw)

    def post(self, path: str, **kw):
        return self.http.post(self.url(path), timeout=10, **kw)


@pytest.fixture
def start_service(service_config, container_factory):
    """Start a real service container on the test's vhost and PostgreSQL databases."""

    def start(service_cls, **overrides) -> RunningService:
        config = service_config(service_cls.name, **overrides)
        container = container_factory(service_cls, config)
        container.start()
        return RunningService(container, config)

    return start


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-artifacts")


@pytest.fixture(scope="session")
def browser():
    """Real headless Chromium (Debian's), driven by Playwright."""
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()  # noqa: F841 - kept alive for the session
    instance = driver.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync",
        ],
    )
    yield instance
    instance.close()
    # Playwright's own stop() waits for its driver through asyncio's child watcher, which never
    # wakes under eventlet's monkey-patching (the session would hang at exit): end the driver
    # process ourselves instead.
    _kill_children(lambda cmdline: "playwright" in cmdline and "driver" in cmdline)


def _kill_children(matches) -> None:
    import signal

    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me and matches(cmdline):
            os.kill(int(entry), signal.SIGKILL)


@pytest.fixture
def page(browser):
    """A fresh browser context (own cookies) and page per test."""
    context = browser.new_context(locale="id-ID")
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def artifacts_dir():
    """Where tests keep screenshots and other artefacts (test-artifacts/, not committed)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS
