"""The Kubernetes manifests tools/gen-k8s-yaml.sh renders: they configure every service with
settings it knows, run hardened pods, scrape and scale every worker type once. Their validity
is checked in test_kubernetes_validity.py, the renderer's own behaviour in
test_kubernetes_renderer.py.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from elastic_inference.core import keys
from elastic_inference.core.hosts import HostPolicy
from elastic_inference.core.options import env_name
from elastic_inference.core.settings import (
    AnalysisSettings,
    CommonSettings,
    GatewaySettings,
    InferSettings,
    StreamSettings,
    TrackSettings,
    WebsocketSettings,
    parse_settings,
)
from elastic_inference.engine.models import INFER_TYPES
from elastic_inference.services.local import SAMPLE_STREAMS
from tests.kube_manifests import (
    ALL_OPTIONS,
    AUTOSCALERS,
    NAMESPACE,
    REGISTRY,
    REPO,
    TAG,
    Doc,
    Rendered,
    RenderOnce,
    container_env,
    load_docs,
    selects,
    service_of,
    worker_autoscalers,
)

SETTINGS: dict[str, type[CommonSettings]] = {
    "stream": StreamSettings, "infer": InferSettings, "analysis": AnalysisSettings,
    "track": TrackSettings, "websocket": WebsocketSettings, "gateway": GatewaySettings,
}
# --------------------------------------------------------------------------- configuration


def ei_containers(rendered: Rendered) -> list[tuple[str, Doc]]:
    """(service, container) of every Elastic Inference container."""
    found = [(service_of(pod), container) for _, pod in rendered.pod_templates()
             for container in pod["spec"]["containers"]]
    return [(service, c) for service, c in found if service in SETTINGS]


def unknown_settings(service: str, env: dict[str, str]) -> list[str]:
    """The EI_* variables of ``env`` that ``service`` has no setting for."""
    known = {env_name(f) for f in dataclasses.fields(SETTINGS[service])}
    return sorted(name for name in env if name.startswith("EI_") and name not in known)


def test_unknown_settings_catches_a_typo() -> None:
    assert unknown_settings("infer", {"EI_MAX_AGE": "1", "EI_MAX_AGEE": "1"}) == ["EI_MAX_AGEE"]
    # Known to another service is not enough: the stream has no model directory.
    assert unknown_settings("stream", {"EI_MODEL_DIR": "/m", "PATH": "/bin"}) == ["EI_MODEL_DIR"]


def test_every_variable_is_a_valid_setting_of_its_service(variant: Rendered) -> None:
    containers = ei_containers(variant)
    assert {service for service, _ in containers} == set(SETTINGS)
    for service, container in containers:
        env = container_env(variant, container)
        assert unknown_settings(service, env) == [], container["name"]
        # Every value parses as the service would parse it at start-up.
        parse_settings(SETTINGS[service], container.get("args", []), env)


def test_every_configmap_with_settings_is_loaded(variant: Rendered) -> None:
    """A ConfigMap no container loads would hide its settings (and their typos)."""
    loaded = {source["configMapRef"]["name"] for _, c in ei_containers(variant)
              for source in c.get("envFrom", [])}
    with_settings = {doc["metadata"]["name"] for doc in variant.of_kind("ConfigMap")
                     if any(key.startswith("EI_") for key in doc.get("data", {}))}
    assert with_settings and with_settings <= loaded


def test_images_come_from_the_registry_with_the_tag(variant: Rendered) -> None:
    for _, pod in variant.pod_templates():
        service = service_of(pod)
        for container in pod["spec"]["containers"]:
            if service == "redis":
                # An official image, pinned to a patch release.
                assert re.fullmatch(r"redis:7\.2\.\d+-alpine", container["image"])
            else:
                assert container["image"] == f"{REGISTRY}/ei-{service}:{TAG}"
                assert container["name"] == service


def test_worker_types_and_sample_streams_match_the_code(variant: Rendered) -> None:
    workers = {dep["metadata"]["labels"]["ei.type"]: dep
               for dep, pod in variant.pod_templates() if service_of(pod) == "infer"}
    assert set(workers) == set(INFER_TYPES)
    for infer_type, dep in workers.items():
        assert dep["metadata"]["name"] == f"ei-infer-{infer_type}"
        assert container_env(variant, dep["spec"]["template"]["spec"]["containers"][0])[
            "EI_TYPE"] == infer_type
    streams = set()
    for _, pod in variant.pod_templates():
        env = container_env(variant, pod["spec"]["containers"][0])
        if service_of(pod) == "stream" and "EI_POOL" not in env:  # the pool: test_kubernetes_pool
            source = Path(env["EI_SOURCE"])
            assert source.parent == Path("/opt/ei/samples")
            streams.add((env["EI_STREAM_ID"], source.name, tuple(env["EI_TYPES"].split(","))))
    assert streams == set(SAMPLE_STREAMS)


# --------------------------------------------------------------------------- pods


def test_every_pod_is_hardened_probed_and_sized(variant: Rendered) -> None:
    for workload, pod in variant.pod_templates():
        spec, name = pod["spec"], workload["metadata"]["name"]
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        # Service links would add EI_<SERVICE>_PORT variables, which the services reject.
        assert spec["enableServiceLinks"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "livenessProbe" in container and "readinessProbe" in container, name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), name


def test_ei_pods_serve_metrics_and_probes_on_port_8000(variant: Rendered) -> None:
    for _, container in ei_containers(variant):
        assert {"name": "metrics", "containerPort": 8000} in container["ports"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_labels_and_namespaces(variant: Rendered) -> None:
    assert variant.kustomization["namespace"] == NAMESPACE
    for doc in variant.docs:
        labels, what = doc["metadata"]["labels"], f"{doc['kind']} {doc['metadata']['name']}"
        assert labels["app.kubernetes.io/part-of"] == "elastic-inference", what
        assert "app.kubernetes.io/component" in labels, what
    ours = [doc for path in variant.files if "monitoring" not in path.parts
            for doc in load_docs(path)]
    for doc in ours:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"], doc["metadata"]["name"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
    for workload, pod in variant.pod_templates():
        labels = pod["metadata"]["labels"]
        assert selects(workload["spec"]["selector"]["matchLabels"], labels)
        assert labels["app.kubernetes.io/part-of"] == "elastic-inference"
        assert labels["app.kubernetes.io/component"] == \
            workload["metadata"]["labels"]["app.kubernetes.io/component"]
        if service_of(pod) == "infer":
            assert labels["ei.type"] == workload["metadata"]["labels"]["ei.type"]


# --------------------------------------------------------------------------- services


def metrics_port(service: Doc) -> dict[str, Any] | None:
    return next((p for p in service["spec"]["ports"] if p["name"] == "metrics"), None)


def test_every_service_selects_pods(variant: Rendered) -> None:
    pods = [pod["metadata"]["labels"] for _, pod in variant.pod_templates()]
    for service in variant.of_kind("Service"):
        assert any(selects(service["spec"]["selector"], labels) for labels in pods), \
            service["metadata"]["name"]


def test_every_ei_pod_is_scraped_through_exactly_one_service(variant: Rendered) -> None:
    monitored = [svc for svc in variant.of_kind("Service") if metrics_port(svc)]
    for svc in monitored:
        assert metrics_port(svc) == {"name": "metrics", "port": 8000, "targetPort": "metrics"}
    for _, pod in variant.pod_templates():
        if service_of(pod) in SETTINGS:
            scrapers = [svc["metadata"]["name"] for svc in monitored
                        if selects(svc["spec"]["selector"], pod["metadata"]["labels"])]
            assert len(scrapers) == 1, (pod["metadata"]["labels"], scrapers)
    # Each of those Services is picked up by exactly one ServiceMonitor.
    monitors = variant.of_kind("ServiceMonitor")
    for svc in monitored:
        picked = [m for m in monitors if selects(m["spec"]["selector"].get("matchLabels", {}),
                                                 svc["metadata"]["labels"])
                  and all(svc["metadata"]["labels"].get(e["key"]) in e["values"]
                          for e in m["spec"]["selector"].get("matchExpressions", []))]
        assert len(picked) == 1, svc["metadata"]["name"]


def test_headless_metrics_services_and_traffic_services(render_once: RenderOnce) -> None:
    rendered = render_once()
    for name in ("ei-infer", "ei-stream", "ei-analysis"):
        service = rendered.one("Service", name)
        assert service["spec"]["clusterIP"] == "None" and metrics_port(service)
    for name, port in (("ei-gateway", 8080), ("ei-websocket", 8081), ("redis", 6379)):
        spec = rendered.one("Service", name)["spec"]
        assert spec["type"] == "ClusterIP", name
        assert port in [p["port"] for p in spec["ports"]], name
    assert not [s for s in rendered.of_kind("Service") if s["spec"].get("type") == "NodePort"]


def test_node_ports_expose_traffic_only(render_once: RenderOnce) -> None:
    node_ports = [s for s in render_once(*ALL_OPTIONS).of_kind("Service")
                  if s["spec"].get("type") == "NodePort"]
    assert {s["metadata"]["name"]: [p["nodePort"] for p in s["spec"]["ports"]]
            for s in node_ports} == {"ei-gateway-nodeport": [30080],
                                     "ei-websocket-nodeport": [30081]}
    assert not [s for s in node_ports if metrics_port(s)]


def test_ingress_serves_one_origin(render_once: RenderOnce) -> None:
    default, options = render_once(), render_once(*ALL_OPTIONS)
    for rendered in (default, options):
        (rule,) = rendered.one("Ingress", "ei-gateway")["spec"]["rules"]
        routes = {p["path"]: (p["pathType"], p["backend"]["service"])
                  for p in rule["http"]["paths"]}
        assert routes == {"/ws": ("Prefix", {"name": "ei-websocket", "port": {"name": "http"}}),
                          "/": ("Prefix", {"name": "ei-gateway", "port": {"name": "http"}})}
    default_spec = default.one("Ingress", "ei-gateway")["spec"]
    assert "ingressClassName" not in default_spec and "host" not in default_spec["rules"][0]
    options_spec = options.one("Ingress", "ei-gateway")["spec"]
    assert options_spec["ingressClassName"] == "nginx"
    assert options_spec["rules"][0]["host"] == "ei.example.com"
    for rendered, url in ((default, "/ws"), (options, "ws://203.0.113.5:30081/ws")):
        gateway = rendered.one("Deployment", "ei-gateway")["spec"]["template"]["spec"]
        assert container_env(rendered, gateway["containers"][0])["EI_WEBSOCKET_URL"] == url


def test_allowed_hosts_follow_the_ingress_host(render_once: RenderOnce) -> None:
    """The gateway and the websocket server answer for the Ingress host (and the node of -w,
    and port-forward's localhost); without -H, as the Ingress routes any host, for any."""
    wildcard = render_once("-H", "*.example.com")
    for rendered, hosts in (
            (render_once(), "*"),
            (render_once(*ALL_OPTIONS), "ei.example.com,203.0.113.5,localhost,127.0.0.1,[::1]"),
            (wildcard, ".example.com,localhost,127.0.0.1,[::1]")):
        for name in ("ei-gateway", "ei-websocket"):
            pod = rendered.one("Deployment", name)["spec"]["template"]["spec"]
            env = container_env(rendered, pod["containers"][0])
            assert env["EI_ALLOWED_HOSTS"] == hosts, name
            assert "EI_ALLOWED_ORIGINS" not in env  # derived from the hosts
            cls: type[GatewaySettings | WebsocketSettings] = (
                GatewaySettings if name == "ei-gateway" else WebsocketSettings)
            settings = parse_settings(cls, [], {k: v for k, v in env.items()
                                                if k != "EI_REDIS_URL"})
            policy = HostPolicy.build(settings.allowed_hosts, settings.allowed_origins)
            assert not policy.allows_origin("https://evil.example") or hosts == "*"
    assert wildcard.one("Ingress", "ei-gateway")["spec"]["rules"][0]["host"] == "*.example.com"


# --------------------------------------------------------------------------- autoscaling


def autoscaler_targets(rendered: Rendered) -> list[str]:
    """The Deployment every worker autoscaler (HPA or ScaledObject) targets, one entry each."""
    targets = []
    for doc in (worker_autoscalers(rendered, "HorizontalPodAutoscaler")
                + worker_autoscalers(rendered, "ScaledObject")):
        ref = doc["spec"]["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment"
        targets.append(ref["name"])
    return targets


@pytest.mark.parametrize("autoscaler", AUTOSCALERS)
def test_one_autoscaler_per_worker_type(render_once: RenderOnce, autoscaler: str) -> None:
    rendered = render_once("-a", autoscaler, "-m", "12")
    assert sorted(autoscaler_targets(rendered)) == sorted(f"ei-infer-{t}" for t in INFER_TYPES)
    for infer_type in INFER_TYPES:
        # The autoscaler owns the count: a re-apply must not reset it.
        assert "replicas" not in rendered.one("Deployment", f"ei-infer-{infer_type}")["spec"]
    hpas = worker_autoscalers(rendered, "HorizontalPodAutoscaler")
    scaled = worker_autoscalers(rendered, "ScaledObject")
    if autoscaler == "keda":
        assert not hpas
        check_scaled_objects(rendered, scaled)
        return
    assert not scaled
    expected = ({"type": "Pods", "pods": {"metric": {"name": "ei_scale_ratio"},
                                          "target": {"type": "AverageValue",
                                                     "averageValue": "1"}}}
                if autoscaler == "ratio" else
                {"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": 70}}})
    for hpa in hpas:
        spec = hpa["spec"]
        assert spec["metrics"] == [expected]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 12)
        assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0


def check_scaled_objects(rendered: Rendered, scaled: list[Doc]) -> None:
    secret = rendered.one("Secret", "ei-redis-keda")
    for obj in scaled:
        infer_type = obj["metadata"]["labels"]["ei.type"]
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["listName"] == keys.queue(infer_type)
        assert obj["spec"]["maxReplicaCount"] == 12
        auth = rendered.one("TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == "ei-redis-keda" and ref["key"] in secret["stringData"]


# --------------------------------------------------------------------------- analysis jobs


MEDIA = "/opt/ei/media"


def test_media_volume_for_analysis_jobs(render_once: RenderOnce) -> None:
    """One claim for the videos, mounted read-only where the runners, the gateway and the
    stream pool (file sources) look."""
    default, options = render_once(), render_once(*ALL_OPTIONS)
    for rendered, modes, size, storage_class in (
            (default, ["ReadWriteMany"], "10Gi", None),
            (options, ["ReadWriteOnce"], "200Gi", "nfs-client")):
        spec = rendered.one("PersistentVolumeClaim", "ei-media")["spec"]
        assert spec["accessModes"] == modes
        assert spec["resources"]["requests"]["storage"] == size
        assert spec.get("storageClassName") == storage_class
        mounting = {}
        for workload, pod in rendered.pod_templates():
            claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["spec"]["volumes"]
                      if "persistentVolumeClaim" in v}
            media = [name for name, claim in claims.items() if claim["claimName"] == "ei-media"]
            if not media:
                continue
            assert claims[media[0]]["readOnly"] is True
            (container,) = pod["spec"]["containers"]
            mounts = [m for m in container["volumeMounts"] if m["name"] == media[0]]
            assert mounts == [{"name": media[0], "mountPath": MEDIA, "readOnly": True}]
            service = service_of(pod)
            env = container_env(rendered, container)
            settings = parse_settings(SETTINGS[service], [], env)
            assert isinstance(settings, (AnalysisSettings, GatewaySettings, StreamSettings))
            assert settings.media_dir == Path(MEDIA)
            mounting[workload["metadata"]["name"]] = service
        assert mounting == {"ei-analysis": "analysis", "ei-gateway": "gateway",
                            "ei-stream-pool": "stream"}


def test_analysis_runner(render_once: RenderOnce) -> None:
    deployment = render_once().one("Deployment", "ei-analysis")
    assert deployment["spec"]["replicas"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"]) == ("analysis",
                                                        f"{REGISTRY}/ei-analysis:{TAG}")
    # The image's entrypoint is `ei analysis`: no command, no arguments to override it.
    assert "command" not in container and "args" not in container
    dockerfile = (REPO / "container" / "analysis" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["/opt/ei/venv/bin/ei", "analysis"]' in dockerfile


def test_gpu_workers(render_once: RenderOnce) -> None:
    default, gpu = render_once(), render_once(*ALL_OPTIONS)
    assert default.one("ConfigMap", "ei-infer-config")["data"]["EI_DEVICE"] == "CPU"
    assert gpu.one("ConfigMap", "ei-infer-config")["data"]["EI_DEVICE"] == "GPU"
    for rendered, extra, groups in ((default, {}, None), (gpu, {"gpu.intel.com/i915": "1"}, [110])):
        for _, pod in rendered.pod_templates():
            infer = service_of(pod) == "infer"
            assert pod["spec"]["securityContext"].get("supplementalGroups") == (
                groups if infer else None)
            limits = pod["spec"]["containers"][0]["resources"]["limits"]
            assert {k: v for k, v in limits.items() if k not in ("cpu", "memory")} == (
                extra if infer else {})
