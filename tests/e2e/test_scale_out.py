"""Scale-out: two processes of every service on one broker and one set of databases, under
load. Every complaint is handled once: competing consumers share the queues, consumers are
idempotent, the outbox relays of two replicas never publish the same row twice (FOR UPDATE SKIP
LOCKED), notification's sweep sends each delivery once (database leases) and the SLA clock's
escalation fires once per complaint although both routing replicas tick."""

from collections import Counter

import pytest
import requests
from support import amqp
from support.deploy_scale import KECAMATAN, Databases, counter_total, replicas, submit_all
from support.wait import wait_for

pytestmark = pytest.mark.e2e

COMPLAINTS = 300


@pytest.fixture
def dbs(pg_urls):
    handle = Databases(pg_urls)
    yield handle
    handle.close()


def test_two_replicas_of_every_service_handle_each_complaint_once(
    service_env, tmp_path, amqp_uri, dbs, make_complaint
):
    env = {**service_env, "RATE_LIMIT_IP": "100000/100000"}  # one client, 300 complaints
    # 8 processes share this machine's PostgreSQL (max_connections=100, other tests too): small
    # worker pools keep each process's connection pool small (see docs/scaling.md)
    env.update({f"{s}_MAX_WORKERS": "3" for s in ("INTAKE", "ROUTING", "NOTIFICATION",
                                                   "REPORTING")})
    with replicas(env, tmp_path / "logs") as clusters:
        received = amqp.Capture(amqp_uri, "intake.events", "complaint_received")
        routed = amqp.Capture(amqp_uri, "routing.events", "complaint_routed")
        breached = amqp.Capture(amqp_uri, "routing.events", "complaint_sla_breached")
        bodies = [
            make_complaint(KECAMATAN[i % len(KECAMATAN)], f"warga{i}@example.com")
            for i in range(COMPLAINTS)
        ]
        codes = submit_all(clusters, bodies, threads=4)
        assert len(set(codes)) == COMPLAINTS

        # everything flows through: routed once, counted once in reporting, notified once
        wait_for(lambda: dbs.scalar("routing", "SELECT count(*) FROM decisions") == COMPLAINTS,
                 timeout=180, message="all complaints routed")
        wait_for(lambda: dbs.scalar(
            "reporting", "SELECT count(*) FROM events WHERE event_type = 'complaint_routed'"
        ) == COMPLAINTS, timeout=120, message="reporting saw every routing decision")
        wait_for(lambda: dbs.scalar(
            "notification", "SELECT count(*) FROM deliveries WHERE status = 'pending'") == 0
            and dbs.scalar("notification", "SELECT count(*) FROM deliveries") >= COMPLAINTS,
            timeout=180, message="every delivery sent")
        for service in ("intake", "routing", "notification"):
            wait_for(lambda s=service: dbs.scalar(
                s, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0,
                timeout=60, message=f"{service} outbox drained")

        assert dbs.scalar("intake", "SELECT count(*) FROM complaints") == COMPLAINTS
        assert dbs.scalar("routing", "SELECT count(DISTINCT complaint_id) FROM decisions") == \
            COMPLAINTS
        # the outbox relays of the two replicas published each event exactly once
        for capture, event_type in ((received, "complaint_received"),
                                    (routed, "complaint_routed")):
            ids = Counter(body["event_id"] for body, _ in wait_for(
                lambda c=capture: len(c.drain()) >= COMPLAINTS and c.messages, timeout=60,
                message=f"{event_type} captured"))
            assert len(ids) == COMPLAINTS and max(ids.values()) == 1, event_type
        assert dbs.scalar("reporting", "SELECT count(*) FROM events WHERE event_type = "
                          "'complaint_received'") == COMPLAINTS
        # each delivery went to the provider once: one lease, one attempt, one file
        assert dbs.scalar("notification", "SELECT count(*) FROM deliveries "
                          "WHERE status <> 'sent' OR attempts <> 1") == 0
        sent = dbs.scalar("notification", "SELECT count(*) FROM deliveries")
        outbox_dir = service_env["DUMAS_VAR_DIR"] + "/outbox"
        from pathlib import Path

        assert len(list(Path(outbox_dir).glob("*.json"))) == sent

        # both replicas really competed for the work
        for service, metric in (("intake", "dumas_complaints_received_total"),
                                ("routing", "dumas_complaints_routed_total")):
            per_replica = [
                counter_total(requests.get(c.url(service, "/metrics"), timeout=10).text, metric)
                for c in clusters
            ]
            assert all(n > 0 for n in per_replica), (service, per_replica)
            assert sum(per_replica) == COMPLAINTS, (service, per_replica)

        # SLA: every response deadline passes at once; both routing replicas' clocks tick, and
        # each complaint is escalated exactly once
        overdue = dbs.execute(
            "routing", "UPDATE complaints SET response_warn_at = now() - interval '2 days', "
            "response_due_at = now() - interval '1 day' WHERE responded_at IS NULL")
        assert overdue == COMPLAINTS
        wait_for(lambda: dbs.scalar(
            "routing", "SELECT count(*) FROM complaints WHERE response_breached_at IS NOT NULL"
        ) == COMPLAINTS, timeout=150, message="every complaint escalated")
        wait_for(lambda: dbs.scalar(
            "routing", "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0,
            timeout=60, message="escalations published")
        assert dbs.scalar("routing", "SELECT count(*) FROM outbox "
                          "WHERE routing_key = 'complaint_sla_breached'") == COMPLAINTS
        per_complaint = Counter(body["correlation_id"] for body, _ in wait_for(
            lambda: len(breached.drain()) >= COMPLAINTS and breached.messages, timeout=60,
            message="escalations captured"))
        assert len(per_complaint) == COMPLAINTS and max(per_complaint.values()) == 1
        breaches = [counter_total(requests.get(c.url("routing", "/metrics"), timeout=10).text,
                                  "dumas_sla_breaches_total") for c in clusters]
        assert sum(breaches) == COMPLAINTS, breaches
