"""The short `make chaos` (python -m tests.chaos.run --short): complaints through every channel
while each service is SIGKILLed and restarted twice, the broker is taken away once and the
run's databases once; the system's own records must then account for every accepted complaint.

The runner is a separate process (it drives threads and subprocesses that must not run under
this process's eventlet monkey-patching). The broker outage is the run's own relay being killed
(`--broker-outage proxy`), so parallel test runs on the shared RabbitMQ are not disturbed;
CHAOS_BROKER_OUTAGE=app makes it `rabbitmqctl stop_app` like the full `make chaos`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 420  # the run itself takes ~2-3 min; this only bounds a hang


def test_faults_under_load_lose_nothing_duplicate_nothing_and_never_answer_500(tmp_path):
    figures_path = tmp_path / "chaos.json"
    command = [
        sys.executable, "-m", "tests.chaos.run", "--short",
        "--broker-outage", os.environ.get("CHAOS_BROKER_OUTAGE", "proxy"),
        "--json", str(figures_path), "--log-dir", str(tmp_path / "chaos"),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    print(done.stdout[-6000:])
    assert figures_path.exists(), f"the run did not finish:\n{done.stdout[-4000:]}{done.stderr}"
    figures = json.loads(figures_path.read_text())
    totals = figures["totals"]

    # every planned fault happened: 2 kills per service, one broker and one database outage
    faults = [event["fault"] for event in figures["timeline"]]
    assert sorted(f for f in faults if f.startswith("SIGKILL")) == sorted(
        f"SIGKILL {s}" for s in ("intake", "routing", "notification", "reporting") for _ in "12"
    )
    assert sum(f.startswith("RabbitMQ down") for f in faults) == 1
    assert sum(f.startswith("PostgreSQL down") for f in faults) == 1
    assert set(figures["by_channel"]) == {"web", "form", "partner", "whatsapp", "amqp", "ptsp"}

    assert totals["accepted"] > 0
    assert totals["lost"] == 0 and totals["notification_lost"] == 0, figures["problems"]
    assert totals["duplicated"] == 0, figures["problems"]
    assert totals["accepted"] == totals["stored"] == totals["notified"] + totals["parked"]
    assert figures["answers_500"] == 0
    assert figures["answers_503_db_down"] > 0
    assert figures["probe"]["probe_503_without_retry_after"] == 0
    assert figures["accepted_while_broker_down"] > 0
    assert not any(figures["probe"]["half_written_after_outage"].values())
    assert figures["probe"]["probe_complaints_stored"] == 0  # answered 503: nothing committed
    assert {k: a == b for k, (a, b) in figures["reporting"].items()} == {
        k: True for k in figures["reporting"]
    }
    assert figures["held"] == {}
    assert figures["checks"] == {k: True for k in figures["checks"]}, figures["problems"]
    assert done.returncode == 0, done.stdout[-4000:]
