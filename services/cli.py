"""The `dumas` command: operations on the whole system.

    dumas migrate [SERVICE ...]   create or upgrade the databases (and seed the unit registry)
    dumas dlq list|show|requeue   inspect and re-queue parked (dead-lettered) messages
"""

import argparse
import logging
import sys
from pathlib import Path

from shared import config
from shared.migrate import upgrade

SERVICES_DIR = Path(__file__).parent


def migrate(services: list[str]) -> None:
    for service in services:
        url = config.database_url(service)
        upgrade(SERVICES_DIR / service / "migrations", url)
        print(f"{service}: database up to date")
        if service == "routing":
            from services.routing.commands import seed_registry

            added = seed_registry(url)
            print(f"routing: unit registry seeded ({added} new units)")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="dumas", description="Dumas operations")
    sub = parser.add_subparsers(dest="command", required=True)
    p_migrate = sub.add_parser("migrate", help="create or upgrade databases, seed the registry")
    p_migrate.add_argument("services", nargs="*", choices=[[], *config.SERVICES], default=[])
    args = parser.parse_args(argv)
    if args.command == "migrate":
        migrate(args.services or list(config.SERVICES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
