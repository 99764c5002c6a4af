"""Settings from the environment, with defaults that match docker-compose.yml and `make run`.

nameko services read theirs from `services/<name>/config.yaml` (`${VAR:default}` substitution);
commands and tests use these helpers so both agree on names and defaults.
"""

import os
from pathlib import Path

SERVICES = ("intake", "routing", "notification", "reporting")
DEFAULT_PORTS = {"intake": 8001, "routing": 8002, "notification": 8003, "reporting": 8004}
DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"


def var_dir() -> Path:
    return Path(os.environ.get("DUMAS_VAR_DIR", "var"))


def amqp_uri() -> str:
    return os.environ.get("AMQP_URI", DEFAULT_AMQP_URI)


def database_url(service: str) -> str:
    default = f"sqlite:///{var_dir()}/{service}.sqlite3"
    return os.environ.get(f"{service.upper()}_DATABASE_URL", default)


def http_address(service: str) -> str:
    return os.environ.get(f"{service.upper()}_HTTP_ADDRESS", f"0.0.0.0:{DEFAULT_PORTS[service]}")


def public_base_url() -> str:
    return os.environ.get("PUBLIC_BASE_URL", "http://localhost:8001").rstrip("/")
