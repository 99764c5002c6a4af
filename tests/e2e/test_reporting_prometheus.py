"""Operations end to end: a real Prometheus (the Debian package) scrapes the four services running
as processes, complaints go in through intake, and Prometheus's HTTP API shows them in the
counters; every service's /metrics, as the real process serves it, passes `promtool check
metrics`; and the shipped alert rules load in that Prometheus."""

import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from support.net import free_port
from support.wait import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SERVICES = ("intake", "routing", "notification", "reporting")
PILOT_KECAMATAN = "17.08.05"  # Merigi: kua-merigi is `pilot` in units.yaml
COMPLAINTS = 3


class Prometheus:
    """A Prometheus process with its own storage and port, scraping `targets` every second."""

    def __init__(self, tmp_path: Path, targets: dict[str, str]):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{
                "job_name": "dumas",
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [address], "labels": {"dumas_service": service}}
                    for service, address in targets.items()
                ],
            }],
        }
        self.config_path = tmp_path / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "prometheus.log"
        self.storage = tmp_path / "prometheus-data"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        check = subprocess.run([PROMTOOL, "check", "config", str(self.config_path)],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([
                PROMETHEUS, f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h", "--log.level=warn",
            ], stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=60, interval=0.2, message="prometheus ready")
        return self

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited:\n{self.log()}"
        try:
            return requests.get(f"{self.base}/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def api(self, path: str, **params) -> dict:
        response = requests.get(f"{self.base}/api/v1/{path}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def vector(self, expr: str) -> dict[tuple, float]:
        """An instant query: {label values (sorted by label name): value}."""
        result = self.api("query", query=expr)["result"]
        return {tuple(v for _, v in sorted(r["metric"].items())): float(r["value"][1])
                for r in result}


@pytest.fixture
def prometheus_for(tmp_path):
    started = []

    def start(cluster):
        targets = {s: f"127.0.0.1:{cluster.port(s)}" for s in SERVICES}
        prom = Prometheus(tmp_path, targets).start()
        started.append(prom)
        return prom

    yield start
    for prom in started:
        prom.stop()


def test_prometheus_scrapes_the_services_and_counts_the_submitted_complaints(
    cluster, dumas, make_complaint, prometheus_for
):
    prom = prometheus_for(cluster)
    # every service is scraped and up
    wait_for(lambda: prom.vector('sum by (dumas_service, instance) (up{job="dumas"})') == {
        (s, f"127.0.0.1:{cluster.port(s)}"): 1.0 for s in SERVICES
    }, timeout=30, interval=0.5, message="all four targets up")

    codes = [
        dumas.submit_accepted(make_complaint(PILOT_KECAMATAN, f"warga{i}@example.com",
                                             channel="web"))
        for i in range(COMPLAINTS)
    ]
    assert len(set(codes)) == COMPLAINTS

    def counted(expr, expected):
        def check():
            return prom.vector(expr) == expected
        wait_for(check, timeout=45, interval=0.5,
                 message=f"{expr} == {expected} (last: {prom.vector(expr)})")

    counted('sum by (channel, outcome) (dumas_complaints_received_total{job="dumas"})',
            {("web", "accepted"): float(COMPLAINTS)})
    counted('sum by (unit) (dumas_complaints_routed_total{job="dumas"})',
            {("kua-merigi",): float(COMPLAINTS)})
    counted('sum by (audience, outcome) (dumas_notifications_total{job="dumas",outcome="sent"})',
            {("complainant", "sent"): float(COMPLAINTS), ("unit", "sent"): float(COMPLAINTS)})
    # the series come from the service that owns them
    assert prom.vector('count by (dumas_service) (dumas_complaints_received_total)') == {
        ("intake",): 1.0}
    assert prom.vector('count by (dumas_service) (dumas_complaints_routed_total)') == {
        ("routing",): 1.0}

    # the shipped alert rules load and are evaluated; none fires for a healthy flow of three
    groups = prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    shipped = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"]
               for r in g["rules"]}
    assert {r["name"] for r in rules if r["type"] == "alerting"} == shipped
    assert all(r["health"] != "err" for r in rules), [r for r in rules if r["health"] == "err"]
    firing = [a for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]
    assert firing == []


def test_every_running_service_serves_metrics_that_pass_promtool_check(cluster, dumas,
                                                                       make_complaint):
    code = dumas.submit_accepted(make_complaint(PILOT_KECAMATAN, "budi@example.com"))
    # wait until the complaint went all the way through, so every service's metrics have samples
    wait_for(lambda: dumas.stats()["total"] == 1, timeout=30, message=f"{code} in reporting")
    for service in SERVICES:
        response = requests.get(cluster.url(service, "/metrics"), timeout=10)
        assert response.status_code == 200, service
        assert response.headers["content-type"].startswith("text/plain"), service
        result = subprocess.run([PROMTOOL, "check", "metrics"], input=response.text,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{service}: {result.stdout}{result.stderr}"
        assert "dumas_" in response.text, service
