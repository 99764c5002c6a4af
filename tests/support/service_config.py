"""A service's shipped config.yaml, read as `nameko run --config` reads it (`${VAR:default}`
substituted from the environment)."""

from pathlib import Path

import yaml
from nameko.cli.main import setup_yaml_parser

SERVICES = Path(__file__).resolve().parents[2] / "services"

# what points a service at its broker, database, address, files and log handler: a test's own
LOCAL_KEYS = frozenset({"AMQP_URI", "DATABASE_URL", "WEB_SERVER_ADDRESS", "PUBLIC_BASE_URL",
                        "DUMAS_VAR_DIR", "LOGGING"})


def load_config(service: str) -> dict:
    """services/<service>/config.yaml with the environment substituted."""
    setup_yaml_parser()
    with open(SERVICES / service / "config.yaml") as f:
        return yaml.safe_load(f)


def shipped_settings(service: str) -> dict:
    """The service's shipped settings without the LOCAL_KEYS: what a test starts it with to
    check a default as it ships."""
    return {k: v for k, v in load_config(service).items() if k not in LOCAL_KEYS}
