"""deploy/ manifests, validated offline.

Core kinds (Deployment, Service, HorizontalPodAutoscaler) against the Kubernetes JSON schemas that
kubernetes-validate ships, in strict mode (unknown fields are errors), for the oldest Kubernetes
release the manifests need (1.30: ContainerResource metrics) and the newest it knows. The
InferenceService is a KServe CRD it has no schema for: its fields are checked against KServe's
v1beta1 API here, and its container part against the core Container schema.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.app import app
from scripts import kserve_bundle

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
INFERENCE_SERVICE = REPO_ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
# KServe v1beta1 ModelSpec: its own fields, then the Container fields it embeds (serving.kserve.io CRD).
KSERVE_MODEL_FIELDS = {"modelFormat", "protocolVersion", "runtime", "runtimeVersion", "storageUri", "storage"}
KSERVE_PREDICTOR_FIELDS = {"model", "minReplicas", "maxReplicas", "scaleMetric", "scaleMetricType", "scaleTarget",
                           "containerConcurrency", "timeout", "canaryTrafficPercent", "serviceAccountName"}  # fmt: skip
# The runtime's protocolVersion and the TorchServe envelope it selects (TS_SERVICE_ENVELOPE).
ENVELOPE_BY_PROTOCOL = {"v1": "kserve", "v2": "kservev2"}
STORAGE_URI = re.compile(r"^(s3|gs|pvc|https?|hdfs|webhdfs|oci|hf)://[^\s]+$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MEASURED_TORCHSERVE_RSS_MIB = 1386  # end of the 5,000-request load test (docs/operations.md)
MEASURED_GATEWAY_RSS_MIB = 81


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S_DIR.glob("*.yaml")) for doc in documents(path)]


def by_kind(kind: str) -> dict[str, Any]:
    [doc] = [doc for doc in k8s_documents() if doc["kind"] == kind]
    return doc


def containers() -> dict[str, dict[str, Any]]:
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    return {container["name"]: container for container in pod["containers"]}


def mib(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_manifests_are_valid_kubernetes(version: str) -> None:
    docs = k8s_documents()
    assert sorted(doc["kind"] for doc in docs) == ["Deployment", "HorizontalPodAutoscaler", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    """Strict mode works offline: a typo in a probe is an error, not a silently ignored field."""
    deployment = copy.deepcopy(by_kind("Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 10
    with pytest.raises(kubernetes_validate.ValidationError, match="periodSecond"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_service_hpa_and_pods_refer_to_each_other() -> None:
    deployment, service, hpa = by_kind("Deployment"), by_kind("Service"), by_kind("HorizontalPodAutoscaler")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "detector"}
    [metric] = hpa["spec"]["metrics"]
    assert metric["containerResource"]["container"] in containers()


def test_gateway_probes_use_its_health_route() -> None:
    gateway = containers()["gateway"]
    assert gateway["ports"] == [{"name": "http", "containerPort": 8000}]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert "get" in app.openapi()["paths"]["/"]
    assert gateway["livenessProbe"]["tcpSocket"] == {"port": "http"}


def test_torchserve_stays_on_loopback_and_is_probed_there() -> None:
    torchserve = containers()["torchserve"]
    assert "ports" not in torchserve  # nothing declared, nothing exposed: config.properties binds 127.0.0.1
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert torchserve[probe]["exec"]["command"][-1] == "http://127.0.0.1:8080/ping"
    assert torchserve["command"][-4:] == ["--ts-config", "config.properties", "--model-store", "model-store"]
    env = {item["name"]: item for item in torchserve["env"]}
    assert env["DETECTOR_TORCH_THREADS"]["valueFrom"]["resourceFieldRef"]["containerName"] == "torchserve"


def test_resource_requests_cover_the_measured_memory() -> None:
    gateway, torchserve = containers()["gateway"]["resources"], containers()["torchserve"]["resources"]
    assert mib(torchserve["requests"]["memory"]) >= MEASURED_TORCHSERVE_RSS_MIB
    assert mib(torchserve["limits"]["memory"]) >= 1.4 * MEASURED_TORCHSERVE_RSS_MIB
    assert mib(gateway["requests"]["memory"]) >= MEASURED_GATEWAY_RSS_MIB
    assert mib(gateway["requests"]["memory"]) < mib(torchserve["requests"]["memory"]) / 4


def test_inference_service_has_kserves_structure() -> None:
    [isvc] = documents(INFERENCE_SERVICE)
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert DNS_1035_LABEL.match(isvc["metadata"]["name"])
    assert set(isvc["spec"]) == {"predictor"}
    predictor = isvc["spec"]["predictor"]
    assert set(predictor) <= KSERVE_PREDICTOR_FIELDS
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "pytorch"}
    assert model["runtime"] == "kserve-torchserve"
    assert ENVELOPE_BY_PROTOCOL[model["protocolVersion"]] == kserve_bundle.ENVELOPE
    assert STORAGE_URI.match(model["storageUri"])


def test_inference_service_container_fields_are_a_valid_container() -> None:
    """Whatever of the model spec is not KServe's own is a core Container (KServe merges it into its runtime's)."""
    [isvc] = documents(INFERENCE_SERVICE)
    model = isvc["spec"]["predictor"]["model"]
    container = {"name": "kserve-container", **{k: v for k, v in model.items() if k not in KSERVE_MODEL_FIELDS}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": {"containers": [container]}}
    kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[-1], strict=True)
    assert model["resources"] == containers()["torchserve"]["resources"]
