"""`make chaos`: complaints through every channel while services are SIGKILLed, the broker goes
away and the databases go away; then the system's own records must account for every one.

    python -m tests.chaos.run [--duration 240] [--seed N] [--rate 3] [--short]
                              [--broker-outage app|proxy] [--db-outage isolate|restart]

What it does, how to read the table and the figures of a run: docs/reliability.md, "make chaos".
Exit status: 0 when nothing was lost or duplicated, no 500 was answered, intake answered 503 with
Retry-After while the databases were down and kept accepting while the broker was down; 1
otherwise; 2 when the run could not be set up.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import signal
import sys
import time
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:  # the tests' own helpers, imported as pytest imports them
    sys.path.insert(0, str(TESTS))

from chaos.faults import BrokerOutage, BrokerProxy, DatabaseOutage  # noqa: E402
from chaos.load import RECORDED_CHANNEL, Load, Phase  # noqa: E402
from chaos.verify import SERVICES, Records, verify  # noqa: E402
from e2e.harness import ServiceCluster  # noqa: E402
from support import amqp, databases  # noqa: E402
from support.net import free_port  # noqa: E402
from support.notification_standins import HttpStandIn, SmtpStandIn  # noqa: E402

from services.routing.commands import add_account  # noqa: E402

PROVIDERS = ("unit.*=file,complainant.email=smtp,complainant.sms=sms_http,"
             "complainant.whatsapp=whatsapp_cloud")


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=240.0,
                   help="seconds of load; the faults happen inside it (default 240)")
    p.add_argument("--seed", type=int, default=None, help="fault schedule seed (printed)")
    p.add_argument("--rate", type=float, default=3.0, help="complaints per second (default 3)")
    p.add_argument("--kills", type=int, default=2, help="SIGKILL+restart per service (2)")
    p.add_argument("--outage", type=float, default=20.0,
                   help="seconds the broker and the databases stay down (default 20)")
    p.add_argument("--broker-outage", choices=("app", "proxy"), default="app",
                   help="app: rabbitmqctl stop_app/start_app on the shared broker (default); "
                        "proxy: kill this run's relay to it (touches nobody else)")
    p.add_argument("--db-outage", choices=("isolate", "restart"), default="isolate",
                   help="isolate: this run's databases refuse connections and lose their "
                        "sessions (default); restart: pg_ctlcluster stop, then start, of the "
                        "shared server")
    p.add_argument("--drain-timeout", type=float, default=300.0,
                   help="seconds allowed for the system to settle after the load (300)")
    p.add_argument("--give-up", type=float, default=120.0,
                   help="seconds a client keeps retrying one complaint (120)")
    p.add_argument("--short", action="store_true",
                   help="the CI size: --duration 75 --rate 2 --outage 6 --drain-timeout 150 "
                        "--broker-outage proxy, unless given")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--log-dir", type=Path, default=Path("var/chaos"),
                   help="services' logs and stand-in records (var/chaos)")
    args = p.parse_args(argv)
    if args.short:
        given = {a.split("=", 1)[0] for a in argv or []}
        for flag, value in (("--duration", 75.0), ("--rate", 2.0), ("--outage", 6.0),
                            ("--drain-timeout", 150.0), ("--broker-outage", "proxy"),
                            ("--give-up", 90.0)):
            if flag not in given:
                setattr(args, flag[2:].replace("-", "_"), value)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)
    return args


# --------------------------------------------------------------------------- the schedule


def schedule(seed: int, duration: float, kills: int) -> list[tuple[float, str, str]]:
    """(at seconds into the load, kind, target), sorted; the same seed gives the same plan."""
    rng = random.Random(seed)
    faults = [("kill", s) for s in SERVICES for _ in range(kills)]
    faults += [("broker", "rabbitmq"), ("database", "postgresql")]
    rng.shuffle(faults)
    times = sorted(rng.uniform(0.08 * duration, 0.8 * duration) for _ in faults)
    return [(at, kind, target) for at, (kind, target) in zip(times, faults, strict=True)]


class Timeline:
    def __init__(self):
        self.events: list[dict] = []
        self.t0 = time.monotonic()

    def add(self, **entry) -> dict:
        entry["at"] = round(time.monotonic() - self.t0, 1)
        self.events.append(entry)
        return entry


def run_faults(plan, *, cluster, phase, broker, database, records, outage, timeline, probes):
    for at, kind, target in plan:
        delay = timeline.t0 + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        started = time.monotonic()
        if kind == "kill":
            phase.set(f"kill:{target}")
            code = cluster.kill(target)
            cluster.restart(target)  # waits for /health = 200
            phase.set("normal")
            entry = timeline.add(fault=f"SIGKILL {target}", exit=code,
                                 back_after=round(time.monotonic() - started, 1))
        elif kind == "broker":
            phase.set("broker_down")
            broker.down()
            try:
                time.sleep(outage)
            finally:
                broker.up()
                phase.set("normal")
            entry = timeline.add(fault=f"RabbitMQ down ({broker.mode})",
                                 back_after=round(time.monotonic() - started, 1))
        else:
            phase.set("db_down")
            database.down()
            try:
                probe = probe_while_db_down(cluster, outage, database)
            finally:
                database.up()
                phase.set("normal")
            probes.update(probe)
            # every probe was answered 503 and never retried: none of them may exist
            probes["probe_complaints_stored"] = records.scalar(
                "intake", "SELECT count(*) FROM complaints WHERE description LIKE '%[sonde]'")
            half = records.half_written()
            probes["half_written_after_outage"] = half
            entry = timeline.add(fault=f"PostgreSQL down ({database.mode})",
                                 back_after=round(time.monotonic() - started, 1),
                                 probe=probe, half_written=half)
        log(f"t={entry['at']:6.1f}s {entry['fault']}: back after {entry['back_after']} s")
        revive_the_dead(cluster, timeline)


def revive_the_dead(cluster, timeline) -> list[str]:
    """A service that exited without being killed is a finding: record it, then start it
    again so the run can still show what the crash cost."""
    dead = [s for s in SERVICES if not cluster.procs[s].is_alive()]
    for name in dead:
        tail = cluster.procs[name].log_tail(6)
        timeline.add(fault=f"{name} EXITED BY ITSELF", died=True, log_tail=tail[-1500:])
        log(f"{name} exited by itself; restarting it. Last lines of its log:\n{tail}")
        cluster.restart(name)
    return dead


def probe_while_db_down(cluster, outage: float, database) -> dict:
    """Direct requests to intake while its database refuses connections: 503 + Retry-After."""
    import requests

    answers = Counter()
    retry_after_missing = 0
    deadline = time.monotonic() + outage
    sessions = database.sessions() if database.mode == "isolate" else None
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            response = requests.post(
                cluster.url("intake", "/api/v1/complaints"), timeout=10,
                json={"category": "nikah_rujuk", "kecamatan_code": "17.08.05",
                      "confidentiality": "anonymous",
                      "description": f"Sonde saat basis data mati nomor {n} [sonde]"},
            )
        except requests.RequestException as exc:
            answers[f"error:{type(exc).__name__}"] += 1
        else:
            answers[str(response.status_code)] += 1
            if response.status_code == 503 and not response.headers.get("Retry-After"):
                retry_after_missing += 1
        time.sleep(0.5)
    return {"probe_answers": dict(answers), "probe_503_without_retry_after": retry_after_missing,
            "sessions_while_down": sessions}


# --------------------------------------------------------------------------- settling


# The management API's unacknowledged counts are samples (every 5 s): "nothing moving" must
# hold for longer than that before it is believed.
QUIET_SECONDS = 12.0


def settle(records: Records, timeout: float) -> dict:
    """Wait until nothing has moved for QUIET_SECONDS (or `timeout`); the last reading."""
    deadline = time.monotonic() + timeout
    last = None
    quiet_since = None
    while time.monotonic() < deadline:
        try:
            last = records.progress()
        except Exception as exc:  # a database or the broker still coming back
            last = {"error": str(exc)[:200]}
        if any(last.values()):
            quiet_since = None
        else:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= QUIET_SECONDS:
                return last
        time.sleep(1.0)
    return last or {}


# --------------------------------------------------------------------------- the table


def answers_by_phase(submissions) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for sub in submissions:
        for phase, answer in sub.attempts:
            key = phase.split(":", 1)[0]
            label = str(answer)
            if label[:3].isdigit():
                label = label[:3]
            elif label.startswith("error:"):
                label = "no answer"
            out.setdefault(key, Counter())[label] += 1
    return out


def figures(args, verdict, submissions, timeline, probes, settled, elapsed) -> dict:
    by_phase = answers_by_phase(submissions)
    http_in_broker_down = Counter()
    for sub in submissions:
        if sub.channel == "amqp":
            continue
        for phase, answer in sub.attempts:
            if phase == "broker_down":
                http_in_broker_down[str(answer)[:3]] += 1
    all_answers = Counter()
    for c in by_phase.values():
        all_answers.update(c)
    db_down = by_phase.get("db_down", Counter())
    probe = Counter(probes.get("probe_answers", {}))
    accepted_while_broker_down = sum(n for a, n in http_in_broker_down.items() if a[0] in "23")
    totals = {k: verdict.total(k) for k in (
        "submitted", "accepted", "stored", "routed", "notified", "parked", "lost",
        "notification_lost", "duplicated", "not_accepted", "stored_without_2xx")}
    checks = {
        "nothing lost": totals["lost"] + totals["notification_lost"] == 0,
        "nothing duplicated": totals["duplicated"] == 0,
        "no 500": all_answers["500"] + probe["500"] == 0,
        # each accepted complaint ends notified, or parked somewhere with a reason
        "every accepted complaint settled":
            totals["accepted"] == totals["notified"] + totals["parked"],
        "503 + Retry-After while the database was down":
            probe["503"] > 0 and probes.get("probe_503_without_retry_after", 1) == 0
            and sum(n for a, n in probe.items() if a != "503") == 0,
        "nothing half-written": not any(probes.get("half_written_after_outage", {}).values())
        and not any(verdict.half_written.values())
        and probes.get("probe_complaints_stored") == 0,
        "intake accepted while the broker was down": accepted_while_broker_down > 0,
        "reporting equals the sources": all(a == b for a, b in verdict.reporting.values()),
        "no message stranded in a queue": not verdict.held,
        "every client got an answer": totals["not_accepted"] == 0,
        "no service exited by itself": not any(e.get("died") for e in timeline.events),
    }
    return {
        "seed": args.seed, "duration": args.duration, "rate": args.rate,
        "broker_outage": args.broker_outage, "db_outage": args.db_outage,
        "elapsed_seconds": round(elapsed, 1), "totals": totals,
        "by_channel": {ch: dict(c) for ch, c in verdict.by_channel.items()},
        "answers_by_phase": {p: dict(c) for p, c in by_phase.items()},
        "answers_500": all_answers["500"] + probe["500"],
        "answers_503_db_down": db_down["503"] + probe["503"],
        "probe": probes, "accepted_while_broker_down": accepted_while_broker_down,
        "reporting": {k: list(v) for k, v in verdict.reporting.items()},
        "parked_messages": verdict.parked, "held": verdict.held,
        "parked_by_queue": dict(Counter(f"{p['queue']} ({p['reason']})" for p in verdict.parked)),
        "orphaned_rpc_replies": verdict.orphaned_replies,
        "resent_same_reference": verdict.resent, "settled": settled,
        "timeline": timeline.events, "problems": verdict.problems[:50], "checks": checks,
        "ok": all(checks.values()) and verdict.ok,
    }


def print_table(f: dict) -> None:
    cols = ("submitted", "accepted", "stored", "routed", "notified", "parked", "lost",
            "duplicated")
    print()
    print(f"chaos run: seed {f['seed']}, {f['duration']:.0f} s at {f['rate']}/s, broker outage "
          f"{f['broker_outage']}, database outage {f['db_outage']}, {f['elapsed_seconds']} s")
    print(f"{'channel':<10}" + "".join(f"{c:>11}" for c in cols))
    for channel, c in sorted(f["by_channel"].items()):
        lost = c.get("lost", 0) + c.get("notification_lost", 0)
        vals = [c.get(k, 0) for k in cols[:-2]] + [lost, c.get("duplicated", 0)]
        print(f"{channel:<10}" + "".join(f"{v:>11}" for v in vals))
    t = f["totals"]
    vals = [t[k] for k in cols[:-2]] + [t["lost"] + t["notification_lost"], t["duplicated"]]
    print(f"{'TOTAL':<10}" + "".join(f"{v:>11}" for v in vals))
    print()
    print(f"answers while the database was down: {f['answers_503_db_down']} x 503 "
          f"(probe: {f['probe'].get('probe_answers')}, of which stored: "
          f"{f['probe'].get('probe_complaints_stored')}); 500s in the whole run: "
          f"{f['answers_500']}")
    print(f"HTTP complaints accepted while the broker was down: {f['accepted_while_broker_down']}")
    print(f"answers by phase: {json.dumps(f['answers_by_phase'])}")
    print(f"reporting vs sources: {json.dumps(f['reporting'])}")
    print(f"parked (dead-letter queues): {len(f['parked_messages'])}; stranded in queues: "
          f"{f['held'] or 0}; provider copies resent with the same reference: "
          f"{f['resent_same_reference']}")
    for queue, n in sorted(f["parked_by_queue"].items()):
        print(f"  parked: {n} in {queue}")
    if f["orphaned_rpc_replies"]:
        print(f"  replies to a killed RPC caller (their queues expire): "
              f"{f['orphaned_rpc_replies']}")
    for name, ok in f["checks"].items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    for problem in f["problems"]:
        print(f"  ! {problem}")
    print("RESULT:", "PASS" if f["ok"] else "FAIL")


# --------------------------------------------------------------------------- main


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _terminated)  # `make chaos` is bounded by timeout(1)
    args = parse_args(argv if argv is not None else sys.argv[1:])
    started = time.monotonic()
    plan = schedule(args.seed, args.duration, args.kills)
    log(f"seed {args.seed}; plan: " + ", ".join(f"{at:.0f}s {k} {t}" for at, k, t in plan))
    run_dir = args.log_dir.resolve() / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{args.seed}"
    run_dir.mkdir(parents=True)
    var = run_dir / "var"
    log(f"logs and records under {run_dir}")

    cleanup = []
    try:
        vhost = amqp.create_vhost()
        cleanup.append(lambda: amqp.delete_vhost(vhost))
        templates = databases.create_templates()
        cleanup.append(lambda: databases.drop_all(templates.values()))
        pg_urls = databases.clone_all(templates)
        cleanup.append(lambda: databases.drop_all(pg_urls.values()))
        proxy = None
        amqp_uri = amqp.uri_for(vhost)
        if args.broker_outage == "proxy":
            proxy = BrokerProxy(free_port(), amqp.HOST, run_dir / "broker-relay.log")
            proxy.start()
            cleanup.append(proxy.stop)
            amqp_uri = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}"
        smtp = SmtpStandIn(run_dir)
        smtp.start()
        cleanup.append(smtp.stop)
        token = secrets.token_hex(8)
        http = HttpStandIn(run_dir, token=token)
        http.start()
        cleanup.append(http.stop)
        keys = {"api_key": f"chaos-{secrets.token_hex(12)}",
                "whatsapp_app_secret": secrets.token_hex(16),
                "desk_user": "chaos-ptsp", "desk_password": secrets.token_urlsafe(18)}
        add_account(pg_urls["routing"], keys["desk_user"], "Petugas PTSP Uji", "ptsp_officer",
                    keys["desk_password"])
        env = {
            "AMQP_URI": amqp_uri, "DUMAS_VAR_DIR": str(var),
            **{f"{s.upper()}_DATABASE_URL": u for s, u in pg_urls.items()},
            "RATE_LIMIT_IP": "100000/100000",
            "INTAKE_API_KEYS": f"rumah_digital:{keys['api_key']}:100000/100000",
            "WHATSAPP_APP_SECRET": keys["whatsapp_app_secret"],
            "WHATSAPP_VERIFY_TOKEN": secrets.token_hex(8),
            "NOTIFICATION_PROVIDERS": PROVIDERS,
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port),
            "WHATSAPP_BASE_URL": http.base_url, "WHATSAPP_API_VERSION": "v21.0",
            "WHATSAPP_PHONE_NUMBER_ID": "1234567890", "WHATSAPP_TOKEN": token,
            "SMS_GATEWAY_URL": http.sms_url, "SMS_GATEWAY_TOKEN": token,
            # a SIGKILLed notification's leased deliveries are swept again after the lease
            "NOTIFICATION_PROVIDER_TIMEOUT": "5", "NOTIFICATION_LEASE_SECONDS": "16",
            "NOTIFICATION_RETRY_BASE_SECONDS": "2",
        }
        cluster = ServiceCluster(env, log_dir=run_dir / "logs", unique_ports=True)
        cluster.start()
        cleanup.append(cluster.stop)
        log("services up: " + ", ".join(f"{s}={cluster.base_url(s)}" for s in SERVICES))
    except Exception as exc:
        log(f"could not set up the run: {exc}")
        _cleanup(cleanup)
        return 2

    records = Records(pg_urls, amqp.uri_for(vhost), vhost, var / "outbox", smtp.record,
                      http.record)
    db_names = [u.rsplit("/", 1)[-1] for u in pg_urls.values()]
    broker = BrokerOutage(args.broker_outage, proxy, amqp.HOST)
    database = DatabaseOutage(args.db_outage, f"{databases.SERVER}/postgres", db_names)
    phase = Phase()
    load = Load(cluster=cluster, amqp_uri=amqp_uri, seed=args.seed, rate=args.rate,
                phase=phase, secrets_=keys, give_up=args.give_up)
    timeline = Timeline()
    probes: dict = {}
    result = None
    try:
        load.start()
        run_faults(plan, cluster=cluster, phase=phase, broker=broker, database=database,
                   records=records, outage=args.outage, timeline=timeline, probes=probes)
        remaining = timeline.t0 + args.duration - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        revive_the_dead(cluster, timeline)
        log(f"load stopped after {len(load.submissions)} complaints; waiting for the clients")
        load.stop()
        revive_the_dead(cluster, timeline)
        log("waiting for the system to settle")
        settled = settle(records, args.drain_timeout)
        log(f"settled: {settled}")
        verdict = verify(records, load.submissions, lambda s: "62" + load._phone(s)[1:])
        result = figures(args, verdict, load.submissions, timeline, probes, settled,
                         time.monotonic() - started)
        result["recorded_channels"] = RECORDED_CHANNEL
        result["run_dir"] = str(run_dir)
    except BaseException as exc:  # SIGTERM from `timeout` too: clean up, broker back up
        log(f"the run broke down: {type(exc).__name__}: {exc}")
        load.abort()
        if not isinstance(exc, Exception):
            raise
    finally:
        records.close()
        _cleanup(cleanup)
    if result is None:
        return 2
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["ok"] else 1


def _cleanup(steps) -> None:
    for step in reversed(steps):
        try:
            step()
        except Exception as exc:  # keep cleaning up
            log(f"cleanup: {exc}")


if __name__ == "__main__":
    sys.exit(main())
