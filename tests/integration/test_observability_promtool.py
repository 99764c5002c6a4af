"""Operations config is checked by Prometheus's own tools: every service's /metrics passes
`promtool check metrics`, the scrape config is valid, every alert has a passing
`promtool test rules` case, and the Grafana dashboard only queries metrics that exist."""

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY, generate_latest

from services.reporting.service import ReportingService

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
PROMTOOL = shutil.which("promtool")


def promtool(*args, stdin=None):
    assert PROMTOOL, "promtool missing: apt-get install prometheus (.ci/run does)"
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=PROM)


def test_every_service_metrics_output_passes_promtool_check_metrics(start_service):
    for name in ("intake", "routing", "notification", "reporting"):
        importlib.import_module(f"services.{name}.service")  # registers the service's metrics
    reporting = start_service(ReportingService)
    reporting.get("/api/v1/stats")  # HTTP metrics get samples
    served = reporting.get("/metrics")
    assert served.status_code == 200
    for text in (served.text, generate_latest(REGISTRY).decode()):
        result = promtool("check", "metrics", stdin=text)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "dumas_dead_letter_messages{" in served.text


def test_scrape_config_is_valid():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_passing_promtool_rules_test():
    alerts = {r["alert"] for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    tested = {t["alertname"] for case in yaml.safe_load(
        (PROM / "alerts_test.yml").read_text())["tests"] for t in case["alert_rule_test"]}
    assert alerts == tested
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_dashboard_uses_the_provisioned_datasource_and_known_metrics():
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "dumas.yml").read_text())["datasources"][0]
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "dumas.yml").read_text())["providers"][0]
    assert provider["type"] == "file"
    dashboard = json.loads((GRAFANA / "dashboards" / "dumas.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    metric_names = set(re.findall(r"^# TYPE (\S+)", generate_latest(REGISTRY).decode(), re.M))
    ids = set()
    for panel in dashboard["panels"]:
        ids.add(panel["id"])
        assert panel["datasource"]["uid"] == datasource["uid"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            for name in re.findall(r"\b(dumas_[a-z_]+)", target["expr"]):
                base = re.sub(r"_(bucket|count|sum)$", "", name)
                assert base in metric_names or base.removesuffix("_total") in metric_names \
                    or name == "dumas_dead_letter_messages", name
    assert len(ids) == len(dashboard["panels"])
