"""After a chaos run: what the system's own records say happened to every complaint.

Sources, and nothing else: intake's, routing's, notification's and reporting's databases, the
notification providers' far ends (the file outbox, the SMTP and HTTP stand-ins' records) and
the broker's queues (passive declares; the management API for the list and the unacked).
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import quote

import requests
from kombu import Connection
from sqlalchemy import create_engine, text

from shared import messaging

SERVICES = ("intake", "routing", "notification", "reporting")
WHATSAPP_PATH = "/v21.0/1234567890/messages"
SMS_PATH = "/sms/send"
MGMT = "http://127.0.0.1:15672"
AUTH = ("guest", "guest")


class Records:
    """Read-only views of one run's databases, broker vhost and provider records."""

    def __init__(self, pg_urls: dict, amqp_uri: str, vhost: str, outbox_dir: Path,
                 smtp_record: Path, http_record: Path):
        self.engines = {s: create_engine(u, pool_size=1, max_overflow=0)
                        for s, u in pg_urls.items()}
        self.amqp_uri = amqp_uri
        self.vhost = vhost
        self.outbox_dir = outbox_dir
        self.smtp_record = smtp_record
        self.http_record = http_record

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()

    def rows(self, service: str, sql: str, **params) -> list:
        with self.engines[service].connect() as conn:
            return conn.execute(text(sql), params).all()

    def scalar(self, service: str, sql: str, **params):
        with self.engines[service].connect() as conn:
            return conn.execute(text(sql), params).scalar()

    # ------------------------------------------------------------------ what verify reads

    def complaints(self) -> list:
        """intake: (id, tracking_code, status, description, channel) of every complaint."""
        return self.rows("intake", "SELECT id, tracking_code, status, description, channel "
                                   "FROM complaints")

    def decisions(self) -> list[str]:
        """routing: the complaint id of every routing decision."""
        return [r[0] for r in self.rows("routing", "SELECT complaint_id FROM decisions")]

    def routed_events(self) -> list[str]:
        """routing: the complaint id of every `complaint_routed` event it ever published."""
        return [r[0] for r in self.rows(
            "routing", "SELECT correlation_id FROM outbox WHERE routing_key = 'complaint_routed'")]

    def deliveries(self) -> list:
        return self.rows("notification", "SELECT id, complaint_id, audience, recipient, "
                         "channel, template, status, provider, last_error FROM deliveries")

    def reporting_totals(self) -> tuple[int, int, int, int]:
        """reporting: complaints, routed, notifications sent, notifications failed."""
        return tuple(self.rows(
            "reporting", "SELECT count(*), "
            "coalesce(sum(CASE WHEN status = 'routed' THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(notifications_sent), 0), "
            "coalesce(sum(notifications_failed), 0) FROM complaint_facts")[0])

    def delivery_totals(self) -> tuple[int, int]:
        """notification: deliveries sent, deliveries failed."""
        return tuple(self.rows(
            "notification", "SELECT "
            "coalesce(sum(CASE WHEN status = 'sent' THEN 1 ELSE 0 END), 0), "
            "coalesce(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) FROM deliveries")[0])

    def unpublished(self) -> dict[str, int]:
        return {s: self.scalar(s, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
                for s in SERVICES if s != "reporting"}

    # ------------------------------------------------------------------ broker

    def queues(self) -> list[dict]:
        response = requests.get(f"{MGMT}/api/queues/{quote(self.vhost, safe='')}",
                                auth=AUTH, timeout=10)
        response.raise_for_status()
        return response.json()

    def held(self, orphaned: dict | None = None) -> dict[str, int]:
        """Messages in every queue that is not a dead-letter queue: ready (exact, by passive
        declare) plus unacknowledged (management API).

        Not counted: the RPC reply queue of a SIGKILLed process (nameko declares reply queues
        with `x-expires`; a reply that arrives after its caller died waits there until the
        queue expires). Such replies are no one's work; they go to `orphaned` when given."""
        held = {}
        with Connection(self.amqp_uri, connect_timeout=5) as conn:
            channel = conn.channel()
            for queue in self.queues():
                name = queue["name"]
                if name.endswith(".dead"):
                    continue
                if name.startswith("rpc.reply-") and queue.get("consumers", 0) == 0 \
                        and "x-expires" in queue.get("arguments", {}):
                    if orphaned is not None and queue.get("messages", 0):
                        orphaned[name] = queue.get("messages", 0)
                    continue
                _, ready, _ = channel.queue_declare(name, passive=True)
                count = ready + queue.get("messages_unacknowledged", 0)
                if count:
                    held[name] = count
        return held

    def parked(self) -> list[dict]:
        """Every message in a dead-letter queue (read without taking it)."""
        out = []
        with Connection(self.amqp_uri, connect_timeout=5) as conn:
            channel = conn.channel()
            for queue in self.queues():
                if not queue["name"].endswith(".dead"):
                    continue
                taken = []
                while (message := channel.basic_get(queue["name"], no_ack=False)) is not None:
                    taken.append(message)
                    headers = message.headers or {}
                    try:
                        body = json.loads(message.body)
                    except (ValueError, UnicodeDecodeError):
                        body = {}
                    out.append({
                        "queue": queue["name"], "event_type": body.get("event_type"),
                        "correlation_id": body.get("correlation_id"),
                        "reason": headers.get(messaging.REASON_HEADER),
                        "error": headers.get(messaging.ERROR_HEADER),
                    })
                for message in taken:  # leave them where they are
                    channel.basic_reject(message.delivery_tag, requeue=True)
        return out

    # ------------------------------------------------------------------ the far ends

    def provider_copies(self) -> dict[str, Counter]:
        """What reached each provider: file/smtp/sms by delivery id, whatsapp by number."""
        copies = {"file": Counter(), "smtp": Counter(), "sms_http": Counter(),
                  "whatsapp_cloud": Counter()}
        if self.outbox_dir.exists():
            for path in self.outbox_dir.glob("*.json"):
                copies["file"][path.stem] += 1
        for line in _lines(self.smtp_record):
            mail = message_from_bytes(base64.b64decode(line["data"]), policy=policy.default)
            copies["smtp"][str(mail["Message-ID"]).strip("<>").split("@", 1)[0]] += 1
        for line in _lines(self.http_record):
            delivered = line.get("answer") in (200, "released")
            if not delivered or not isinstance(line.get("body"), dict):
                continue
            if line["path"] == SMS_PATH:
                copies["sms_http"][line["body"].get("reference")] += 1
            elif line["path"] == WHATSAPP_PATH:
                copies["whatsapp_cloud"][line["body"].get("to")] += 1
        return copies

    # ------------------------------------------------------------------ progress

    def progress(self) -> dict:
        """What is still moving (all zero once the system has settled)."""
        out = {
            "intake_not_routed": self.scalar(
                "intake", "SELECT count(*) FROM complaints WHERE status = 'received'"),
            "deliveries_pending": self.scalar(
                "notification", "SELECT count(*) FROM deliveries WHERE status = 'pending'"),
        }
        for service in SERVICES:
            if service == "reporting":
                continue
            out[f"{service}_outbox_unpublished"] = self.scalar(
                service, "SELECT count(*) FROM outbox WHERE published_at IS NULL")
        intake_total = self.scalar("intake", "SELECT count(*) FROM complaints")
        facts = self.scalar("reporting", "SELECT count(*) FROM complaint_facts")
        out["reporting_behind"] = abs(intake_total - facts)
        sent_failed = self.scalar(
            "notification", "SELECT count(*) FROM deliveries WHERE status <> 'pending'")
        reported = self.scalar(
            "reporting", "SELECT coalesce(sum(notifications_sent + notifications_failed), 0) "
            "FROM complaint_facts")
        out["reporting_notifications_behind"] = abs(sent_failed - reported)
        routed = self.scalar("intake", "SELECT count(*) FROM complaints WHERE status = 'routed'")
        out["notification_behind"] = abs(
            routed - self.scalar("notification", "SELECT count(*) FROM complaint_views"))
        decided = self.scalar("routing", "SELECT count(*) FROM decisions")
        out["reporting_routed_behind"] = abs(decided - self.scalar(
            "reporting", "SELECT count(*) FROM complaint_facts WHERE status = 'routed'"))
        out["queued"] = sum(self.held().values())
        return out

    def half_written(self) -> dict[str, int]:
        """intake rows that exist without the rest of their unit of work."""
        checks = {
            "complaint_without_history": (
                "SELECT count(*) FROM complaints c WHERE NOT EXISTS "
                "(SELECT 1 FROM status_history h WHERE h.complaint_id = c.id)"),
            "complaint_without_received_event": (
                "SELECT count(*) FROM complaints c WHERE NOT EXISTS "
                "(SELECT 1 FROM outbox o WHERE o.correlation_id = c.id "
                "AND o.routing_key = 'complaint_received')"),
            "complaint_without_complainant": (
                "SELECT count(*) FROM complaints c WHERE c.confidentiality <> 'anonymous' "
                "AND NOT EXISTS (SELECT 1 FROM complainants p WHERE p.complaint_id = c.id)"),
            "idempotency_without_complaint": (
                "SELECT count(*) FROM idempotency i WHERE i.complaint_id IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM complaints c WHERE c.id = i.complaint_id)"),
        }
        return {name: self.scalar("intake", sql) for name, sql in checks.items()}


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------- the verdict


@dataclass
class Verdict:
    by_channel: dict = field(default_factory=dict)  # channel -> Counter
    problems: list = field(default_factory=list)  # one line each: what is lost/duplicated/wrong
    parked: list = field(default_factory=list)
    held: dict = field(default_factory=dict)
    reporting: dict = field(default_factory=dict)
    resent: int = 0
    half_written: dict = field(default_factory=dict)
    orphaned_replies: dict = field(default_factory=dict)

    def total(self, key: str) -> int:
        return sum(c[key] for c in self.by_channel.values())

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(records: Records, submissions, international) -> Verdict:
    """`international(submission)` gives the complainant's WhatsApp number (digits)."""
    v = Verdict()
    complaints = records.complaints()
    by_marker = defaultdict(list)
    for row in complaints:
        marker = row.description.rsplit("[uji ", 1)[-1].rstrip("]") if "[uji " in row.description \
            else None
        by_marker[marker].append(row)
    decisions = Counter(records.decisions())
    routed_events = Counter(records.routed_events())
    deliveries = defaultdict(list)
    for row in records.deliveries():
        deliveries[row.complaint_id].append(row)
    copies = records.provider_copies()
    v.parked = records.parked()
    parked_ids = {p["correlation_id"] for p in v.parked}

    for sub in submissions:
        c = v.by_channel.setdefault(sub.channel, Counter())
        c["submitted"] += 1
        rows = by_marker.get(sub.marker[len("[uji "):-1], [])
        if not sub.accepted:
            c["not_accepted"] += 1
            c["stored_without_2xx"] += bool(rows)
            if len(rows) > 1:
                c["duplicated"] += 1
                v.problems.append(f"{sub.marker} ({sub.channel}) stored {len(rows)} times")
            continue
        c["accepted"] += 1
        if not rows:
            c["lost"] += 1
            v.problems.append(f"{sub.marker} ({sub.channel}) answered 2xx but not stored")
            continue
        if len(rows) > 1:
            c["duplicated"] += 1
            v.problems.append(f"{sub.marker} ({sub.channel}) stored {len(rows)} times")
        c["stored"] += 1
        row = rows[0]
        if sub.tracking_code and sub.tracking_code.startswith("DMS-") \
                and sub.tracking_code != row.tracking_code:
            v.problems.append(f"{sub.marker}: answered {sub.tracking_code}, stored "
                              f"{row.tracking_code}")
        n_decisions = decisions[row.id]
        if n_decisions == 1 and routed_events[row.id] == 1 and row.status == "routed":
            c["routed"] += 1
        elif row.id in parked_ids:
            c["parked"] += 1
            continue
        else:
            duplicated = n_decisions > 1 or routed_events[row.id] > 1
            c["duplicated" if duplicated else "lost"] += 1
            v.problems.append(f"{sub.marker} ({row.tracking_code}): intake status {row.status}, "
                              f"{n_decisions} decisions, {routed_events[row.id]} routed events")
            continue
        if not deliveries[row.id] and row.id in parked_ids:  # notification parked the event
            c["parked"] += 1
            continue
        _check_notifications(v, c, sub, row, deliveries[row.id], copies, international)

    _check_reporting(v, records, len(complaints), sum(decisions.values()))
    v.held = records.held(v.orphaned_replies)
    if v.held:
        v.problems.append(f"messages stranded in queues: {v.held}")
    unpublished = records.unpublished()
    if any(unpublished.values()):
        v.problems.append(f"outbox rows never published: {unpublished}")
    v.half_written = records.half_written()
    if any(v.half_written.values()):
        v.problems.append(f"half-written complaints: {v.half_written}")
    return v


def _check_notifications(v, c, sub, row, rows, copies, international) -> None:
    groups = defaultdict(list)
    for d in rows:
        groups[(d.audience, d.recipient, d.template)].append(d)
    audiences = {a for a, _, _ in groups}
    wanted = {"unit"} | ({"complainant"} if sub.contact else set())
    if not wanted <= audiences:
        c["notification_lost"] += 1
        v.problems.append(f"{row.tracking_code}: no delivery planned for "
                          f"{sorted(wanted - audiences)}")
        return
    parked = False
    for key, ds in groups.items():
        sent = [d for d in ds if d.status == "sent"]
        if len(sent) > 1:
            c["duplicated"] += 1
            v.problems.append(f"{row.tracking_code}: {len(sent)} deliveries sent for {key}")
        if not sent:
            if any(d.status == "failed" and d.last_error for d in ds):
                parked = True
                continue
            c["notification_lost"] += 1
            v.problems.append(f"{row.tracking_code}: nothing sent for {key}: "
                              f"{[d.status for d in ds]}")
            return
        for d in sent:
            ref = international(sub) if d.provider == "whatsapp_cloud" else d.id
            got = copies.get(d.provider, Counter())[ref]
            if got == 0:
                c["notification_lost"] += 1
                v.problems.append(f"{row.tracking_code}: delivery {d.id} sent by "
                                  f"{d.provider} but never arrived")
                return
            v.resent += got - 1
    c["parked" if parked else "notified"] += 1


def _check_reporting(v, records, intake_total, decided) -> None:
    r = records.reporting_totals()
    sent, failed = records.delivery_totals()
    v.reporting = {
        "complaints": (r[0], intake_total), "routed": (r[1], decided),
        "notifications_sent": (r[2], sent), "notifications_failed": (r[3], failed),
    }
    for name, (reported, source) in v.reporting.items():
        if reported != source:
            v.problems.append(f"reporting {name} = {reported}, the source says {source}")
