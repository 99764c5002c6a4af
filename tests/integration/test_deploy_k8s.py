"""The Kubernetes manifests in deploy/k8s/, validated against the Kubernetes API schemas with
kubernetes-validate (strict: unknown fields fail), plus what the schemas cannot say."""

import json

import pytest
import yaml
from support.deploy_files import BIN, DEPLOY, run

MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication"),
             ("postgresql.cnpg.io/v1", "Cluster"), ("postgresql.cnpg.io/v1", "ScheduledBackup")}
SERVICES = ("intake", "routing", "notification", "reporting")


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
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    queues = {q["name"] for q in json.loads((DEPLOY / "rabbitmq/definitions.json").read_text())
              ["queues"]}
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == [name]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/health"
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
        trigger = scaled[name]["spec"]["triggers"][0]
        assert trigger["type"] == "rabbitmq" and trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["metadata"]["queueName"] in queues
        assert scaled[name]["spec"]["minReplicaCount"] >= 2
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
