"""The monitoring manifests (kubernetes/monitoring/) against promtool and a real Prometheus.

promtool checks the PrometheusRule's rules and runs their unit tests. Then a real Prometheus
scrapes real services — redis-server, an ``ei infer`` worker, ``ei stream`` processes that push
more frames than the worker can take, a stream whose camera is unreachable, a stream-pool
replica reading one managed source, websocket and gateway — with the labels a ServiceMonitor
gives targets (namespace, pod, job, service, ...), and loads the rules. Every dashboard query,
recording rule, alert expression and prometheus-adapter query must then return data. The tests
share one running system (module fixture); the last one stops the worker and the websocket
server to drive the "down" alerts, so it stays last.
"""

from __future__ import annotations

import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.auth import Role
from elastic_inference.core.rulestore import RuleStore
from elastic_inference.core.sources import SourceConfig, SourceStore
from tests.credentials import SECRET_ENV, bearer
from tests.monitoring_manifests import (
    MONITORING,
    adapter_config,
    dashboards,
    exposed_names,
    monitor_for,
    panels,
    render_adapter_query,
    rule_groups,
    rules,
    substitute,
    variables,
)
from tests.processes import Service, wait_for
from tests.prometheus_server import PrometheusServer, Sample, has_number, promtool
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration

UNIT_TESTS = MONITORING / "tests" / "alerts.test.yaml"
RULES_FILE = "prometheusrule.rules.yaml"  # the name alerts.test.yaml loads
#: The Services the manifests create (job label = Service name), by component.
SERVICES = {"infer": "ei-infer", "stream": "ei-stream", "analysis": "ei-analysis",
            "track": "ei-track", "websocket": "ei-websocket", "gateway": "ei-gateway"}
NAMESPACE = "ei-test"
TYPE = "people"
WORKER_POD = f"ei-infer-{TYPE}-0"
LOAD_STREAMS = ("load-0", "load-1")
POOL_POD = "ei-stream-pool-0"
#: The pod each custom metric of the adapter comes from here, and what its value must be: the
#: overloaded worker's ratio, the sources the pool replica holds (one).
CUSTOM_METRICS = {"ei_scale_ratio": (WORKER_POD, lambda v: v > 1),
                  "ei_pool_sources": (POOL_POD, lambda v: v == 1)}
#: Each dashboard variable set to a value of the running system, as a user would pick it (a
#: multi-value variable with one value selected substitutes as that value).
DASHBOARD_VALUES = {"namespace": NAMESPACE, "type": TYPE, "stream": LOAD_STREAMS[0]}
#: Grafana's $__rate_interval is max(4 x scrape interval, step + scrape interval); with this
#: test's 1 s scrapes and a short panel, 20 s.
RATE_INTERVAL = "20s"
#: Two streams asking for this rate offer more than one SSD worker infers beside them on two
#: cores (it does about 150 frames/s alone), so the type overflows and drops.
LOAD_FPS = 150
DATA_TIMEOUT = 30.0

# How each alert is proven against the real system (alerts.test.yaml proves every threshold
# and `for` duration). The overload, with the unreachable camera, makes three expressions true
# and stopping the worker and the websocket server three more. The other three need what this
# test cannot cause cheaply: more than a second of work queued or a p99 above 1 s (a bounded
# queue of 16 frames in front of a ~100 frames/s worker holds 0.16 s), or Redis failing four
# times (it is the session's, shared with other tests). Their expression is evaluated without
# its threshold instead: the series exist, join and compute.
FIRING_UNDER_OVERLOAD = {"EIDropRateHigh", "EIUnderProvisioned", "EIStreamCaptureErrors"}
#: Alerts stopping the worker and the websocket server drives, with the labels they must carry.
FIRING_WHEN_STOPPED = {"EIWorkerDown": {"pod": WORKER_POD},
                       "EIServiceDown": {"job": SERVICES["websocket"]},
                       "EINoWorkers": {"namespace": NAMESPACE, "type": TYPE}}
THRESHOLD_STRIPPED = {"EIQueueBacklog", "EILatencyHigh", "EIRedisReconnects", "EIZoneCrowded"}

# `<expr> <comparison> <number>` at the end of an alert expression.
TRAILING_THRESHOLD = re.compile(r"^(?P<lhs>.+?)\s*(?:>=|<=|==|!=|>|<)\s*(?:bool\s+)?"
                                r"[-+]?[0-9.]+(?:e[-+]?[0-9]+)?\s*$", re.DOTALL)
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)$")


# --------------------------------------------------------------------------- static checks


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PrometheusRule's spec.groups as a plain Prometheus rules file, plus the unit tests."""
    directory = tmp_path_factory.mktemp("rules")
    (directory / RULES_FILE).write_text(yaml.safe_dump({"groups": rule_groups()},
                                                       sort_keys=False))
    shutil.copy(UNIT_TESTS, directory / UNIT_TESTS.name)
    return directory


def test_promtool_checks_the_rules(rules_dir: Path) -> None:
    out = promtool("check", "rules", str(rules_dir / RULES_FILE))
    assert f"{len(rules('record')) + len(rules('alert'))} rules found" in out, out


def test_promtool_unit_tests_pass(rules_dir: Path) -> None:
    promtool("test", "rules", UNIT_TESTS.name, cwd=rules_dir)


def test_every_alert_has_severity_annotations_a_duration_and_unit_tests() -> None:
    outcomes: dict[str, set[bool]] = {}  # alert -> the outcomes (fires or not) its tests check
    for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            outcomes.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    for alert in rules("alert"):
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), name
        assert {"summary", "description"} <= set(alert["annotations"]), name
        assert re.fullmatch(r"\d+[smh]", alert["for"]), name
        assert outcomes.get(name) == {True, False}, f"{name}: unit-test it firing and not"
    proven = FIRING_UNDER_OVERLOAD | set(FIRING_WHEN_STOPPED) | THRESHOLD_STRIPPED
    assert {a["alert"] for a in rules("alert")} == proven, "say how each alert is tested here"


def test_each_service_is_scraped_by_exactly_one_servicemonitor() -> None:
    for component in SERVICES:
        endpoints = monitor_for(component)["spec"]["endpoints"]
        assert [e["port"] for e in endpoints] == ["metrics"], component


def test_dashboards_use_the_datasource_variable_and_unique_panel_ids() -> None:
    uids = [d["uid"] for d in dashboards().values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in dashboards().items():
        (datasource,) = [v for v in variables(dashboard) if v["type"] == "datasource"]
        assert datasource["name"] == "datasource" and datasource["query"] == "prometheus"
        ids = [p["id"] for p in panels(dashboard)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for where in (panel, *panel["targets"]):
                assert where["datasource"]["uid"] == "${datasource}", (name, panel["title"])


# --------------------------------------------------------------------------- the live system


@dataclass
class LiveSystem:
    prometheus: PrometheusServer
    worker: Service
    websocket: Service

    def data(self, expr: str, where: dict[str, str] | None = None,
             timeout: float = DATA_TIMEOUT) -> list[Sample]:
        """Wait until ``expr`` returns a sample with a number (and the labels ``where``)."""
        def found(samples: list[Sample]) -> bool:
            return has_number([s for s in samples
                               if all(s["metric"].get(k) == v for k, v in (where or {}).items())])

        def answer() -> list[Sample] | None:
            samples = self.prometheus.query(expr)
            return samples if found(samples) else None

        samples = self.prometheus.query(expr)  # a malformed query fails here, at once
        if not found(samples):
            samples = wait_for(answer, timeout, f"data from {expr!r} where {where or {}}")
        return samples


def ready(service: Service) -> bool:
    assert service.alive(), f"ei {service.args[0]} exited:\n{service.output()[-3000:]}"
    url = f"http://127.0.0.1:{service.metrics_port}/readyz"
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


def scrape_config(component: str, pods: dict[str, Service]) -> dict[str, Any]:
    """What a ServiceMonitor makes of a Service: job = Service name, target labels as below."""
    (endpoint,) = monitor_for(component)["spec"]["endpoints"]
    job = SERVICES[component]
    return {"job_name": job, "metrics_path": endpoint["path"], "static_configs": [
        {"targets": [f"127.0.0.1:{service.metrics_port}"],
         "labels": {"namespace": NAMESPACE, "pod": pod, "service": job, "container": component,
                    "endpoint": endpoint["port"]}}
        for pod, service in pods.items()]}


@pytest.fixture(scope="module")
def system(redis_server: RedisServer, model_dir: Path, sample_dir: Path, rules_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    url = ["--redis-url", redis_server.url]
    gateway_port = free_port()
    worker = Service(["infer", "--type", TYPE, "--model-dir", str(model_dir), *url])
    load = {f"ei-stream-{stream}": Service(
        ["stream", "--source", str(sample_dir / "vtest.avi"), "--stream-id", stream, "--types",
         TYPE, "--fps", str(LOAD_FPS), "--max-width", "320", *url]) for stream in LOAD_STREAMS}
    # Refused connections: the stream retries with backoff and counts capture errors.
    unreachable = Service(["stream", "--source", f"http://127.0.0.1:{free_port()}/camera.mjpg",
                           "--stream-id", "unreachable", "--types", TYPE, *url])
    websocket = Service(["websocket", "--host", "127.0.0.1", "--port", str(free_port()), *url],
                        env=SECRET_ENV)
    gateway = Service(["gateway", "--host", "127.0.0.1", "--port", str(gateway_port), *url],
                      env=SECRET_ENV)
    analysis = Service(["analysis", "--media-dir", str(sample_dir), *url])
    with redis.Redis.from_url(redis_server.url) as sources_client:
        SourceStore(sources_client).put(SourceConfig("pool-0", "vtest.avi", (TYPE,), fps=2.0,
                                                     max_width=160))
    pool = Service(["stream", "--pool", "--media-dir", str(sample_dir), *url])
    # A zone and a line on the first stream, so the tracker exports occupancy and crossings.
    with redis.Redis.from_url(redis_server.url) as rules_client:
        RuleStore(rules_client).put(LOAD_STREAMS[0], (
            Rule("square", "zone", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)), ()),
            Rule("middle", "line", ((0.5, 0.0), (0.5, 1.0)), ("person",))))
    track = Service(["track", *url])
    pods = {"infer": {WORKER_POD: worker},
            "stream": {**load, "ei-stream-unreachable": unreachable, POOL_POD: pool},
            "analysis": {"ei-analysis-0": analysis},
            "track": {"ei-track-0": track},
            "websocket": {"ei-websocket-0": websocket},
            "gateway": {"ei-gateway-0": gateway}}
    workdir = tmp_path_factory.mktemp("prometheus")
    shutil.copy(rules_dir / RULES_FILE, workdir / RULES_FILE)
    prometheus = PrometheusServer({
        # 1 s scrapes and rule evaluations: a short test sees many of each.
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                   "evaluation_interval": "1s"},
        "rule_files": [RULES_FILE],
        "scrape_configs": [scrape_config(c, p) for c, p in pods.items()],
    }, workdir)
    try:
        promtool("check", "config", str(prometheus.config_path))
        prometheus.start()
        for service in (worker, *load.values(), pool, analysis, track, websocket,
                        gateway):  # not unreachable
            wait_for(partial(ready, service), 90, f"ei {service.args[0]} to be ready")
        # One API request, so the gateway's request counter has a series.
        request = urllib.request.Request(f"http://127.0.0.1:{gateway_port}/api/streams",
                                         headers=bearer(redis.Redis.from_url(redis_server.url),
                                                        Role.VIEWER))
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
        live = LiveSystem(prometheus, worker, websocket)
        for alert in rules("alert"):
            if alert["alert"] in FIRING_UNDER_OVERLOAD:
                live.data(alert["expr"], timeout=60)
        yield live
    finally:
        for by_pod in pods.values():
            for service in by_pod.values():
                service.stop()
        prometheus.stop()


def test_dashboard_variables_find_the_system(system: LiveSystem) -> None:
    for name, dashboard in dashboards().items():
        for variable in variables(dashboard):
            if variable["type"] != "query":
                continue
            parsed = LABEL_VALUES.match(substitute(variable["query"], DASHBOARD_VALUES))
            assert parsed, f"{name}: ${variable['name']}: not label_values(...)"
            found = system.prometheus.label_values(parsed["label"],
                                                   parsed["match"] or '{__name__=~".+"}')
            assert DASHBOARD_VALUES[variable["name"]] in found, (name, variable["name"], found)


def test_every_dashboard_query_returns_data(system: LiveSystem) -> None:
    values = {**DASHBOARD_VALUES, "datasource": "prometheus", "__rate_interval": RATE_INTERVAL}
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                expr = substitute(target["expr"], values)
                assert system.data(expr), f"{name}: {panel['title']}: {expr}"


def test_every_recording_rule_returns_data(system: LiveSystem) -> None:
    for rule in rules("record"):
        assert system.data(rule["expr"]), rule["record"]
        labels = ",".join(f'{k}="{v}"' for k, v in rule.get("labels", {}).items())
        recorded = system.data(f"{rule['record']}{{{labels}}}")
        assert all(s["metric"].get("namespace") == NAMESPACE for s in recorded), recorded


def test_overload_drives_drop_scaling_and_capture_error_alerts(system: LiveSystem) -> None:
    for alert in rules("alert"):
        name = alert["alert"]
        if name in FIRING_UNDER_OVERLOAD:
            assert system.data(alert["expr"]), name
            # Prometheus itself evaluates the loaded rule: pending until `for` has passed.
            system.data(f'ALERTS{{alertname="{name}", alertstate="pending"}}')
        elif name in THRESHOLD_STRIPPED:
            parsed = TRAILING_THRESHOLD.match(alert["expr"].strip())
            assert parsed, f"{name}: no trailing threshold to strip"
            assert system.data(parsed["lhs"]), name


def test_adapter_serves_the_custom_metrics_per_pod(system: LiveSystem) -> None:
    config = adapter_config()
    served: set[str] = set()
    for rule in config["rules"]:
        series = system.prometheus.series(rule["seriesQuery"])
        assert series, rule["seriesQuery"]
        overrides = rule["resources"]["overrides"]
        assert all(label in s for s in series for label in overrides), (overrides, series)
        names = {s["__name__"] for s in series}
        served |= exposed_names(rule, names)
        # As for an HPA over two pods, one of them gone: namespace, then pod=~"a|b", by pod.
        for name in names:
            pod, expected = CUSTOM_METRICS[name]
            query = render_adapter_query(
                rule["metricsQuery"], name, f'namespace="{NAMESPACE}",pod=~"{pod}|{pod}-gone"',
                "pod")
            samples = system.data(query)
            assert [s["metric"] for s in samples] == [{"pod": pod}], query
            assert expected(float(samples[0]["value"][1])), f"{name}: {samples}"
    assert served == set(CUSTOM_METRICS)  # the names the worker and pool HPAs ask for


def test_adapter_serves_per_type_external_metrics(system: LiveSystem) -> None:
    for rule in adapter_config()["externalRules"]:
        names = {s["__name__"] for s in system.prometheus.series(rule["seriesQuery"])}
        assert exposed_names(rule, names), rule["seriesQuery"]
        for name in names:
            # An External metric selected with `type: people` in the HPA, in its namespace.
            query = render_adapter_query(rule["metricsQuery"], name,
                                         f'type="{TYPE}",namespace="{NAMESPACE}"', "")
            assert len(system.data(query)) == 1, query


# Last: it stops processes the tests above read from.
def test_stopping_the_worker_and_websocket_drives_the_down_alerts(system: LiveSystem) -> None:
    assert system.worker.stop() == 0, system.worker.output()[-3000:]
    assert system.websocket.stop() == 0, system.websocket.output()[-3000:]
    for alert in rules("alert"):
        name = alert["alert"]
        if name in FIRING_WHEN_STOPPED:
            system.data(alert["expr"], where=FIRING_WHEN_STOPPED[name])
            system.data(f'ALERTS{{alertname="{name}", alertstate="pending"}}',
                        where=FIRING_WHEN_STOPPED[name])
