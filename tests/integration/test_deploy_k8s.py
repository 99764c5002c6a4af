"""The Kubernetes manifests in deploy/k8s/, validated against the Kubernetes API schemas with
kubernetes-validate (strict: unknown fields fail), plus what the schemas cannot say. Everything
but the PostgreSQL operator's two custom resources is a core API object, the autoscalers
included (HorizontalPodAutoscaler on an external metric), so the schemas check all of it; the
autoscalers' metric is checked by promtool (`promtool test rules`) down to its values."""

import shutil

import pytest
import yaml
from support.deploy_files import BIN, DEPLOY, run

from shared import messaging

MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
# CloudNativePG's CRDs: no schema ships with kubernetes-validate (nor on PyPI); checked below
CRD_KINDS = {("postgresql.cnpg.io/v1", "Cluster"), ("postgresql.cnpg.io/v1", "ScheduledBackup")}
SERVICES = ("intake", "routing", "notification", "reporting")
PROMTOOL = shutil.which("promtool")


def documents():
    return [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_for_the_kubernetes_api(path):
    result = run(BIN / "kubernetes-validate", "--strict", "--quiet", path, check=False)
    unknown = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
               if "Couldn't find schema" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    # only the operators' custom resources lack a schema here
    for line in unknown:
        assert any(kind in line for _, kind in CRD_KINDS), line


def test_services_have_probes_resources_and_an_autoscaler():
    docs = documents()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == set(SERVICES)
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs
              if d["kind"] == "HorizontalPodAutoscaler"}
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == [name]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/health"
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
        (metric,) = scaled[name]["spec"]["metrics"]
        assert metric["type"] == "External"
        assert metric["external"]["metric"] == {"name": "dumas_consumer_backlog",
                                                "selector": {"matchLabels": {"service": name}}}
        assert scaled[name]["spec"]["minReplicas"] >= 2
        assert scaled[name]["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Service"} >= set(SERVICES)
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_rabbitmq_is_a_three_node_cluster_with_the_definitions():
    docs = documents()
    broker = next(d for d in docs if d["kind"] == "StatefulSet")
    assert broker["spec"]["replicas"] == 3
    config = next(d for d in docs if d["kind"] == "ConfigMap"
                  and d["metadata"]["name"] == "rabbitmq-config")["data"]["rabbitmq.conf"]
    assert "peer_discovery_backend = k8s" in config
    assert "definitions.local.path" in config
    settings = next(d for d in docs if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"] == "dumas-config")["data"]
    assert settings["DUMAS_QUEUE_TYPE"] == "quorum"
    postgres = next(d for d in docs if d["kind"] == "Cluster")
    assert postgres["spec"]["instances"] >= 2 and postgres["spec"]["backup"]


def test_the_autoscalers_metric_is_the_recorded_queue_backlog_of_each_service():
    """HPA metric -> prometheus-adapter rule -> Prometheus recording rule -> RabbitMQ's
    per-queue metric: each link names the next, and the rule's arithmetic passes promtool."""
    docs = documents()
    adapter = yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]
                                  ["name"] == "dumas-prometheus-adapter")["data"]["config.yaml"])
    (rule,) = adapter["externalRules"]
    assert rule["name"]["as"] == "dumas_consumer_backlog"
    rules = yaml.safe_load((DEPLOY / "prometheus/autoscaling.yml").read_text())
    (recorded,) = [r for g in rules["groups"] for r in g["rules"]]
    assert rule["seriesQuery"].startswith(recorded["record"] + "{")
    assert "rabbitmq_queue_messages_ready" in recorded["expr"]
    assert "return_per_object_metrics = true" in next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] ==
        "rabbitmq-config")["data"]["rabbitmq.conf"]
    # every consumer queue belongs to the service the rule attributes it to
    for service, _, event_type in messaging.SUBSCRIPTIONS:
        assert messaging.consumer_queue_name(service, event_type).split(".")[0] == service
    for config in ("prometheus.yml", "compose.yml"):
        assert "autoscaling.yml" in yaml.safe_load(
            (DEPLOY / "prometheus" / config).read_text())["rule_files"]
    assert PROMTOOL, "promtool missing: apt-get install prometheus (.ci/run does)"
    result = run(PROMTOOL, "test", "rules", "autoscaling_test.yml", cwd=DEPLOY / "prometheus",
                 check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_ingress_sends_to_services_that_exist_on_their_ports():
    docs = documents()
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    backends = {(p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
                for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert {name for name, _ in backends} == {"intake", "routing", "reporting"}
    for name, port in backends:
        (service_port,) = services[name]["spec"]["ports"]
        assert service_port["port"] == port
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert {p["name"]: p["containerPort"] for p in container["ports"]}[
            service_port["targetPort"]] == port
    assert "defaultBackend" not in ingress["spec"]  # /health and /metrics stay private


def test_attachment_storage_settings_reach_the_services_that_store_and_serve_them():
    docs = documents()
    settings = next(d for d in docs if d["kind"] == "ConfigMap"
                    and d["metadata"]["name"] == "dumas-config")["data"]
    assert settings["DUMAS_STORAGE_BACKEND"] == "s3"
    assert {"DUMAS_S3_ENDPOINT_URL", "DUMAS_S3_BUCKET", "DUMAS_S3_REGION"} <= set(settings)
    assert not {"DUMAS_S3_ACCESS_KEY_ID", "DUMAS_S3_SECRET_ACCESS_KEY"} & set(settings)
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]
               .get("env", [])}
        keys = {name: env[name]["valueFrom"]["secretKeyRef"]
                for name in ("DUMAS_S3_ACCESS_KEY_ID", "DUMAS_S3_SECRET_ACCESS_KEY") if name in env}
        if deployment["metadata"]["name"] in ("intake", "routing"):
            assert keys == {name: {"name": "dumas-object-storage", "key": name} for name in
                            ("DUMAS_S3_ACCESS_KEY_ID", "DUMAS_S3_SECRET_ACCESS_KEY")}
        else:
            assert keys == {}


def test_operator_resources_use_fields_of_their_api():
    """CloudNativePG's Cluster and ScheduledBackup: no schema here, so the fields this project
    relies on are checked against the operator's documented API (postgresql.cnpg.io/v1)."""
    docs = documents()
    cluster = next(d for d in docs if d["kind"] == "Cluster")
    assert set(cluster["spec"]) <= {"instances", "imageName", "primaryUpdateStrategy",
                                    "postgresql", "storage", "affinity", "backup", "bootstrap",
                                    "resources", "monitoring"}
    assert set(cluster["spec"]["backup"]) <= {"retentionPolicy", "barmanObjectStore"}
    assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    backup = next(d for d in docs if d["kind"] == "ScheduledBackup")
    assert backup["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert len(backup["spec"]["schedule"].split()) == 6  # CNPG schedules have a seconds field


def test_broker_pods_run_as_the_images_non_root_user_with_a_private_cookie():
    broker = next(d for d in documents() if d["kind"] == "StatefulSet")
    pod = broker["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 999
    (node,) = pod["containers"]
    assert "RABBITMQ_ERLANG_COOKIE" not in {e["name"] for e in node["env"]}
    (init,) = pod["initContainers"]
    assert init["image"] == node["image"]
    assert "chmod 0400 /var/lib/rabbitmq/.erlang.cookie" in init["command"][-1]
    cookie = next(v for v in pod["volumes"] if v["name"] == "erlang-cookie")["secret"]
    assert cookie["items"] == [{"key": "RABBITMQ_ERLANG_COOKIE", "path": ".erlang.cookie"}]
