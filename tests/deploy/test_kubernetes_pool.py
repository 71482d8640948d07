"""The stream pool's manifests (kubernetes/stream-pool.yaml): `ei stream --pool` with the stream
Redis user, its settings from gen-k8s-yaml.sh -P and -A, the media volume, and its autoscaler
on the sources per replica (through prometheus-adapter) and CPU."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from elastic_inference.core.settings import StreamSettings, parse_settings
from tests.kube_manifests import ALL_OPTIONS, AUTOSCALERS, REPO, Doc, RenderOnce, container_env

ADAPTER = REPO / "kubernetes" / "monitoring" / "prometheus-adapter.yaml"
#: The single mode's settings, which a managed source brings itself (doc/sources.md).
SOURCE_SETTINGS = ("EI_SOURCE", "EI_STREAM_ID", "EI_TYPES", "EI_FPS", "EI_MAX_WIDTH")


def quantity(text: str) -> float:
    """A Kubernetes quantity as the HPA reads an averageValue: ``12`` or ``1500m``."""
    found = re.fullmatch(r"(\d+)(m?)", text)
    assert found, text
    return int(found[1]) / (1000 if found[2] else 1)


@pytest.mark.parametrize(("args", "max_sources", "allow"), [
    ((), 16, ()),
    (ALL_OPTIONS, 6, ("10.30.0.0/16", "*.cams.example.com", "fd00::/8")),
])
def test_the_pool_reads_managed_sources_as_the_stream_user(
        render_once: RenderOnce, args: tuple[str, ...], max_sources: int,
        allow: tuple[str, ...]) -> None:
    rendered = render_once(*args)
    deployment = rendered.one("Deployment", "ei-stream-pool")
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = container_env(rendered, container)
    assert not set(SOURCE_SETTINGS) & set(env)
    settings = parse_settings(StreamSettings, container.get("args", []), env)
    assert settings.pool is True
    assert (settings.max_sources, settings.source_allow) == (max_sources, allow)
    # The same Redis user and Secret as the single-source streams.
    sample = rendered.one("Deployment", "ei-stream-vtest-people")["spec"]["template"]["spec"]
    url = [v for v in container["env"] if v["name"] == "EI_REDIS_URL"]
    assert url == [v for v in sample["containers"][0]["env"] if v["name"] == "EI_REDIS_URL"]
    assert url[0]["valueFrom"]["secretKeyRef"]["name"] == "ei-redis-stream"
    # File sources come from the media volume, read-only, where EI_MEDIA_DIR points.
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "media"]
    assert mount == {"name": "media", "mountPath": str(settings.media_dir), "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "media"]
    assert volume["persistentVolumeClaim"]["claimName"] == "ei-media"
    assert rendered.one("PersistentVolumeClaim", "ei-media")


@pytest.mark.parametrize("autoscaler", AUTOSCALERS)
def test_the_pool_scales_on_sources_per_replica_and_cpu(render_once: RenderOnce,
                                                         autoscaler: str) -> None:
    rendered = render_once("-a", autoscaler, "-m", "12", "-P", "6")
    spec = rendered.one("HorizontalPodAutoscaler", "ei-stream-pool")["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "ei-stream-pool"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 12)
    cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 70}}}
    if autoscaler != "ratio":  # no prometheus-adapter to ask
        assert spec["metrics"] == [cpu]
        return
    sources, other = spec["metrics"]
    assert other == cpu
    assert sources["type"] == "Pods" and sources["pods"]["metric"] == {"name": "ei_pool_sources"}
    target = sources["pods"]["target"]
    assert target["type"] == "AverageValue"
    # Below the cap: replicas that all hold EI_MAX_SOURCES ask for more (4.5 of 6).
    assert quantity(target["averageValue"]) == 4.5
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0


@pytest.mark.parametrize(("max_sources", "target"), [("1", "750m"), ("2", "1500m"),
                                                     ("16", "12"), ("999", "749250m")])
def test_the_sources_target_is_three_quarters_of_the_cap(
        render_once: RenderOnce, max_sources: str, target: str) -> None:
    rendered = render_once("-P", max_sources)
    spec = rendered.one("HorizontalPodAutoscaler", "ei-stream-pool")["spec"]
    assert spec["metrics"][0]["pods"]["target"]["averageValue"] == target
    assert quantity(target) < int(max_sources)


def test_prometheus_adapter_serves_the_pool_metric_per_pod() -> None:
    (config_map,) = [d for d in yaml.safe_load_all(ADAPTER.read_text()) if d]
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    rules: list[Doc] = [r for r in config["rules"] if r["name"]["as"] == "ei_pool_sources"]
    (rule,) = rules
    assert rule["seriesQuery"].startswith("ei_pool_sources{")
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
