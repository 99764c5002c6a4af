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
    p_migrate.add_argument(
        "services", nargs="*", metavar="SERVICE", help=", ".join(config.SERVICES)
    )

    p_dlq = sub.add_parser("dlq", help="parked (dead-lettered) messages")
    dlq = p_dlq.add_subparsers(dest="action", required=True)
    dlq.add_parser("list", help="count parked messages per dead-letter queue")
    p_show = dlq.add_parser("show", help="inspect parked messages without removing them")
    p_show.add_argument("queue", help="e.g. routing.complaint_received.dead")
    p_show.add_argument("--limit", type=int, default=20)
    p_requeue = dlq.add_parser("requeue", help="send parked messages back to their consumer")
    p_requeue.add_argument("queue")
    p_requeue.add_argument("--event-id", help="only this event (default: all)")

    p_acc = sub.add_parser("accounts", help="the account store (staff, desk, auditors)")
    acc = p_acc.add_subparsers(dest="action", required=True)
    p_add = acc.add_parser("add", help="create an account (password read from stdin or prompt)")
    p_add.add_argument("username")
    p_add.add_argument("--name", required=True, help="display name")
    p_add.add_argument("--role", required=True, help="ptsp_officer, unit_operator, unit_head, "
                       "desk_admin or auditor")
    p_add.add_argument("--unit", help="unit code (unit_operator and unit_head)")

    args = parser.parse_args(argv)
    if args.command == "migrate":
        unknown = sorted(set(args.services) - set(config.SERVICES))
        if unknown:
            parser.error(f"unknown service(s): {', '.join(unknown)}")
        migrate(args.services or list(config.SERVICES))
    elif args.command == "dlq":
        return dead_letters(args)
    elif args.command == "accounts":
        return account_command(args)
    return 0


def account_command(args) -> int:
    import getpass

    from services.routing.accounts import AccountError
    from services.routing.commands import add_account

    password = (getpass.getpass("Password: ") if sys.stdin.isatty()
                else sys.stdin.readline().rstrip("\n"))
    try:
        add_account(config.database_url("routing"), args.username, args.name, args.role,
                    password, args.unit)
    except AccountError as exc:
        print(f"dumas accounts: {exc}", file=sys.stderr)
        return 2
    print(f"account {args.username} ({args.role}) created")
    return 0


def dead_letters(args) -> int:
    from shared import deadletters

    uri = config.amqp_uri()
    if args.action == "list":
        for queue, count in sorted(deadletters.depths(uri).items()):
            print(f"{count:6d}  {queue}")
    elif args.action == "show":
        for p in deadletters.peek(uri, args.queue, args.limit):
            print(f"{p.parked_at or '-'}  {p.event_type or '?'} {p.event_id or '?'}  "
                  f"reason={p.reason} attempts={p.attempts}\n    {p.error}")
    elif args.action == "requeue":
        moved = deadletters.requeue(uri, args.queue, args.event_id)
        print(f"{moved} message(s) sent back to {args.queue.removesuffix('.dead')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
