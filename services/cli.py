"""The `dumas` command: operations on the whole system.

    dumas migrate [SERVICE ...]   create or upgrade the databases (and seed the unit registry)
    dumas posters --unit CODE="Name" [--location SLUG="Name"]   printable QR posters (A4)
    dumas dlq list|show|requeue   inspect and re-queue parked (dead-lettered) messages
    dumas deliveries list|show|retry   notifications that failed for good, sent again
    dumas intake prune [--dry-run]   delete idempotency records, media downloads, published
                                  outbox rows and processed_events records past their
                                  retention window (what intake's hourly sweeps do)
    dumas routing prune [--dry-run], dumas notification prune [--dry-run]
                                  the same for the outbox and processed_events of routing and
                                  of notification (shared/retention.py)
    dumas reporting rebuild       replay every stored event into reporting's read model
    dumas reporting monthly --month 2026-11 --out FILE.pdf   "Laporan Bulanan Dumas"
    dumas reporting bench [--generate N]   time the statistics query (cold, p50, p95)
"""

import argparse
import logging
import sys
from pathlib import Path

from shared import config
from shared.migrate import upgrade

SERVICES_DIR = Path(__file__).parent
# Services with an outbox and a processed_events table (swept by shared/retention.py).
RETAINED = ("intake", "routing", "notification")


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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["posters"]:  # intake's poster command keeps its own options
        from services.intake.posters import main as posters

        return posters(argv[1:])
    parser = argparse.ArgumentParser(prog="dumas", description="Dumas operations")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("posters", help="printable QR posters per unit and location (dumas posters -h)")
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

    p_del = sub.add_parser("deliveries", help="notification deliveries (parked = failed)")
    dels = p_del.add_subparsers(dest="action", required=True)
    p_dlist = dels.add_parser("list", help="counts per status and the latest deliveries")
    p_dlist.add_argument("--status", default="failed",
                         help="failed (default), pending or sent")
    p_dlist.add_argument("--limit", type=int, default=50)
    p_dshow = dels.add_parser("show", help="everything recorded about one delivery")
    p_dshow.add_argument("delivery_id")
    p_dretry = dels.add_parser("retry", help="send failed deliveries again (sweep picks them up)")
    p_dretry.add_argument("delivery_ids", nargs="*", metavar="DELIVERY_ID")
    p_dretry.add_argument("--all", action="store_true", help="every failed delivery")

    p_acc = sub.add_parser("accounts", help="the account store (staff, desk, auditors)")
    acc = p_acc.add_subparsers(dest="action", required=True)
    p_add = acc.add_parser("add", help="create an account (password read from stdin or prompt)")
    p_add.add_argument("username")
    p_add.add_argument("--name", required=True, help="display name")
    p_add.add_argument("--role", required=True, help="ptsp_officer, unit_operator, unit_head, "
                       "desk_admin or auditor")
    p_add.add_argument("--unit", help="unit code (unit_operator and unit_head)")
    p_disable = acc.add_parser("disable", help="disable an account (it can no longer sign in)")
    p_disable.add_argument("username")

    p_units = sub.add_parser("units", help="rollout of the units (routing)")
    units_sub = p_units.add_subparsers(dest="action", required=True)
    p_stage = units_sub.add_parser("stage", help="change a unit's rollout stage (audited)")
    p_stage.add_argument("unit", help="unit code, e.g. kua-ujan-mas")
    p_stage.add_argument("stage", help="off, shadow, pilot or live")
    p_stage.add_argument("--by", required=True, help="who decided (recorded in the audit trail)")
    p_stage.add_argument("--reason", default="", help="why (recorded in the audit trail)")
    p_sim = units_sub.add_parser(
        "simulate", help="replay a period's complaints through proposed stages")
    p_sim.add_argument("--from", dest="since", required=True, help="YYYY-MM-DD (inclusive)")
    p_sim.add_argument("--to", dest="until", required=True, help="YYYY-MM-DD (exclusive)")
    p_sim.add_argument("--stage", action="append", default=[], metavar="UNIT=STAGE",
                       help="a proposed stage (repeatable)")

    for service in RETAINED:
        p_service = sub.add_parser(service, help=f"{service} housekeeping")
        service_sub = p_service.add_subparsers(dest="action", required=True)
        p_prune = service_sub.add_parser(
            "prune", help=("idempotency records, media downloads, " if service == "intake"
                           else "") + "published outbox rows and processed_events records "
            "past their retention window, deleted once (windows from the same environment "
            "variables as the service)")
        p_prune.add_argument("--dry-run", action="store_true",
                             help="only count what would be deleted")

    p_rep = sub.add_parser("reporting", help="reporting read model and monthly recap")
    rep = p_rep.add_subparsers(dest="action", required=True)
    rep.add_parser("rebuild", help="rebuild the projections from the stored events")
    p_month = rep.add_parser("monthly", help="write the monthly recap (PDF)")
    p_month.add_argument("--month", required=True, help="YYYY-MM, e.g. 2026-11")
    p_month.add_argument("--out", required=True, type=Path, help="PDF file to write")
    p_month.add_argument("--unit", help="only this unit (default: all units)")
    p_rbench = rep.add_parser("bench", help="time the statistics query (cold, p50, p95)")
    p_rbench.add_argument("--generate", type=int, metavar="N",
                          help="first fill an EMPTY PostgreSQL reporting database with N "
                               "synthetic complaints (e.g. 1000000)")
    p_rbench.add_argument("--repeat", type=int, default=15)

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
    elif args.command == "units":
        return units_command(args)
    elif args.command in RETAINED:
        return prune_command(args.command, args.dry_run)
    elif args.command == "reporting":
        return reporting_command(args)
    elif args.command == "deliveries":
        if args.action == "retry" and not (args.delivery_ids or args.all):
            parser.error("deliveries retry: give delivery ids or --all")
        return delivery_command(args)
    return 0


def delivery_command(args) -> int:
    from services.notification import commands

    url = config.database_url("notification")
    if args.action == "list":
        counts, rows = commands.list_deliveries(url, args.status, args.limit)
        print("  ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "no deliveries")
        for r in rows:
            print(f"{r['id']}  {r['created_at']:%Y-%m-%d %H:%M}  {r['template']:<28} "
                  f"{r['audience']}/{r['channel']:<8} attempts={r['attempts']} "
                  f"{r['provider'] or '-'}  {(r['last_error'] or '')[:80]}")
    elif args.action == "show":
        row = commands.show_delivery(url, args.delivery_id)
        if row is None:
            print(f"dumas deliveries: no delivery {args.delivery_id}", file=sys.stderr)
            return 1
        for key in commands.COLUMNS:
            print(f"{key:>20}: {row[key] if row[key] is not None else '-'}")
        print(f"{'context':>20}: {row['context']}")
    elif args.action == "retry":
        moved = commands.retry_deliveries(url, None if args.all else args.delivery_ids)
        print(f"{moved} delivery(ies) set back to pending; the notification service sends "
              "them within seconds")
    return 0


def prune_command(service: str, dry_run: bool) -> int:
    """`dumas <service> prune`: one retention sweep of the service's outbox and processed_events
    (and, for intake, of its idempotency records and media downloads), settings from the
    environment as the service reads them. A refused setting: nothing deleted, exit 2."""
    import os
    from importlib import import_module

    from services.intake import retention as intake_retention
    from shared import retention

    db = import_module(f"services.{service}.db")
    try:
        windows = retention.windows_from(os.environ)
        intake_windows = intake_retention.windows_from(os.environ) if service == "intake" else None
    except retention.RetentionConfigError as exc:
        print(f"dumas {service} prune: refused, nothing deleted: {exc}", file=sys.stderr)
        return 2
    url = config.database_url(service)
    rows = []
    if intake_windows is not None:
        rows += intake_retention.prune(url, intake_windows, dry_run=dry_run).rows
    shared = retention.prune(url, db.outbox, db.processed_events, windows, service,
                             dry_run=dry_run)
    rows += [("outbox", "published", windows.outbox, shared["outbox"]),
             ("processed_events", "handled", windows.processed_events,
              shared["processed_events"])]
    verb = "would delete" if dry_run else "deleted"
    for table, name, window, n in rows:
        print(f"{table:<16} {name:<9} older than {intake_retention.describe(window):<10} "
              f"{verb} {n}")
    print(f"total: {verb} {sum(n for *_, n in rows)}"
          + (" (dry run: nothing deleted)" if dry_run else ""))
    return 0


def reporting_command(args) -> int:
    import re

    from services.reporting import commands

    url = config.database_url("reporting")
    if args.action == "rebuild":
        print(f"reporting: {commands.rebuild(url)} events replayed")
    elif args.action == "monthly":
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
            print("dumas reporting: --month must be YYYY-MM", file=sys.stderr)
            return 2
        stats = commands.monthly(url, args.month, args.out, args.unit)
        print(f"{args.out}: Laporan Bulanan Dumas {args.month}, {stats['total']} complaints")
    elif args.action == "bench":
        if args.generate:
            try:
                print(commands.generate_into_empty(url, args.generate))
            except ValueError as exc:
                print(f"dumas reporting bench: {exc}", file=sys.stderr)
                return 2
        for name, c in commands.bench(url, repeat=args.repeat).items():
            print(f"{name:<40} {c['plan']:<8} cold {c['cold_ms']:>7} ms  p50 {c['p50_ms']:>7} ms"
                  f"  p95 {c['p95_ms']:>7} ms  ({c['total']:,} complaints)")
    return 0


def units_command(args) -> int:
    from datetime import datetime

    from services.routing import commands
    from services.routing.domain.sla import WIB
    from services.routing.rollout import StageError

    url = config.database_url("routing")
    try:
        if args.action == "stage":
            result = commands.change_stage(url, args.unit, args.stage, args.by, args.reason)
            if result["changed"]:
                print(f"{args.unit}: {result['old_stage']} -> {result['new_stage']}")
            else:
                print(f"{args.unit}: already {result['new_stage']}")
            return 0
        proposal = {}
        for item in args.stage:
            unit, _, stage = item.partition("=")
            if not stage:
                print(f"dumas units simulate: expected UNIT=STAGE, got {item!r}",
                      file=sys.stderr)
                return 2
            proposal[unit.strip()] = stage.strip()
        since = datetime.strptime(args.since, "%Y-%m-%d").replace(tzinfo=WIB)
        until = datetime.strptime(args.until, "%Y-%m-%d").replace(tzinfo=WIB)
        print(commands.simulate(url, proposal, since, until))
        return 0
    except (StageError, ValueError) as exc:
        print(f"dumas units {args.action}: {exc}", file=sys.stderr)
        return 2


def account_command(args) -> int:
    import getpass

    from services.routing.accounts import AccountError
    from services.routing.commands import add_account, disable_account

    if args.action == "disable":
        if not disable_account(config.database_url("routing"), args.username):
            print(f"dumas accounts: no account {args.username!r}", file=sys.stderr)
            return 2
        print(f"account {args.username} disabled")
        return 0

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
