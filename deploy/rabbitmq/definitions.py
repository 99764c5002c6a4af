"""The RabbitMQ topology of Dumas as a definitions file, generated from shared/messaging.py.

    python deploy/rabbitmq/definitions.py write   # regenerate deploy/rabbitmq/definitions.json
    python deploy/rabbitmq/definitions.py check   # exit 1 if the file differs from the code
    python deploy/rabbitmq/definitions.py apply --url http://rabbitmq:15672 --vhost dumas
                                                  # import the file through the management API
                                                  # (user/password: RABBITMQ_USER/_PASSWORD)

The file declares, for DUMAS_QUEUE_TYPE=quorum (what production and docker-compose.yml run):
every `<producer>.events` exchange, every consumer queue with its retry and parking queues and
bindings, exactly as the services declare them (a different argument would make their declare
fail), and the policies the services cannot declare themselves:
- `dumas-poison-<queue>`: a delivery limit on each consumer queue, dead-lettering a message that
  keeps killing its consumer (redelivered more than DELIVERY_LIMIT times without an ack) into the
  queue's `.dead` parking queue, where `dumas dlq` shows it;
- `dumas-retry`: at-least-once dead-lettering of the retry queues back to their consumer queue
  (quorum queues default to at-most-once).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.messaging import (  # noqa: E402
    RETRY_DELAYS_MS,
    SUBSCRIPTIONS,
    consumer_queue_name,
    dead_queue_name,
)

DEFINITIONS_FILE = Path(__file__).with_name("definitions.json")
VHOST = "dumas"
DELIVERY_LIMIT = 20
QUEUE_TYPE = "quorum"


def definitions(vhost: str = VHOST, queue_type: str = QUEUE_TYPE) -> dict:
    typed = {} if queue_type == "classic" else {"x-queue-type": queue_type}
    exchanges, queues, bindings, policies = {}, [], [], []

    def queue(name: str, arguments: dict) -> None:
        queues.append({"name": name, "vhost": vhost, "durable": True, "auto_delete": False,
                       "arguments": {**typed, **arguments}})

    for service, producer, event_type in SUBSCRIPTIONS:
        exchange = f"{producer}.events"
        exchanges[exchange] = {"name": exchange, "vhost": vhost, "type": "topic", "durable": True,
                               "auto_delete": False, "internal": False, "arguments": {}}
        main = consumer_queue_name(service, event_type)
        queue(main, {})
        for level, delay in enumerate(RETRY_DELAYS_MS, start=1):
            queue(f"{main}.retry.{level}", {"x-message-ttl": delay, "x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": main})
        queue(dead_queue_name(main), {})
        bindings.append({"source": exchange, "vhost": vhost, "destination": main,
                         "destination_type": "queue", "routing_key": event_type,
                         "arguments": {}})
        if queue_type == "quorum":
            policies.append({
                "name": f"dumas-poison-{main}", "vhost": vhost,
                "pattern": "^" + main.replace(".", r"\.") + "$", "apply-to": "queues",
                "priority": 10,
                "definition": {"delivery-limit": DELIVERY_LIMIT, "dead-letter-exchange": "",
                               "dead-letter-routing-key": dead_queue_name(main),
                               "dead-letter-strategy": "at-least-once",
                               "overflow": "reject-publish"},
            })
    if queue_type == "quorum":
        policies.append({
            "name": "dumas-retry", "vhost": vhost, "pattern": r"\.retry\.[0-9]+$",
            "apply-to": "queues", "priority": 10,
            "definition": {"dead-letter-strategy": "at-least-once",
                           "overflow": "reject-publish"},
        })
    return {
        "rabbitmq_version": "3.10.8",
        "exchanges": sorted(exchanges.values(), key=lambda e: e["name"]),
        "queues": sorted(queues, key=lambda q: q["name"]),
        "bindings": sorted(bindings, key=lambda b: (b["source"], b["destination"])),
        "policies": sorted(policies, key=lambda p: p["name"]),
    }


def render(defs: dict) -> str:
    return json.dumps(defs, indent=2, sort_keys=True) + "\n"


def apply(url: str, vhost: str, user: str, password: str, path: Path = DEFINITIONS_FILE) -> None:
    """Import the definitions file into `vhost` (created with the user's permissions if absent)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(method: str, api_path: str, body: dict | None = None) -> None:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - operator-given management URL
            url.rstrip("/") + api_path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()

    encoded = quote(vhost, safe="")
    call("PUT", f"/api/vhosts/{encoded}", {})
    call("PUT", f"/api/permissions/{encoded}/{quote(user, safe='')}",
         {"configure": ".*", "write": ".*", "read": ".*"})
    call("POST", f"/api/definitions/{encoded}", json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write", help=f"regenerate {DEFINITIONS_FILE.name}")
    sub.add_parser("check", help="exit 1 if the file differs from shared/messaging.py")
    p_apply = sub.add_parser("apply", help="import the file through the management API")
    p_apply.add_argument("--url", default=os.environ.get("RABBITMQ_MANAGEMENT_URL",
                                                         "http://rabbitmq:15672"))
    p_apply.add_argument("--vhost", default=os.environ.get("RABBITMQ_VHOST", VHOST))
    args = parser.parse_args(argv)
    if args.command == "write":
        DEFINITIONS_FILE.write_text(render(definitions()))
        print(f"wrote {DEFINITIONS_FILE}")
    elif args.command == "check":
        if DEFINITIONS_FILE.read_text() != render(definitions()):
            print(f"{DEFINITIONS_FILE} is stale: run `python {__file__} write`", file=sys.stderr)
            return 1
        print(f"{DEFINITIONS_FILE.name} matches shared/messaging.py")
    else:
        apply(args.url, args.vhost, os.environ.get("RABBITMQ_USER", "dumas"),
              os.environ["RABBITMQ_PASSWORD"])
        print(f"definitions imported into vhost {args.vhost} at {args.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
