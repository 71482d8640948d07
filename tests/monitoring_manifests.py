"""The monitoring manifests under kubernetes/monitoring/, read for the tests: the
PrometheusRule's rules, the ServiceMonitors and what they select, the Grafana dashboards and
their variables, and the prometheus-adapter's configuration and queries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.conftest import REPO

MONITORING = REPO / "kubernetes" / "monitoring"
PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def yaml_documents(name: str) -> list[dict[str, Any]]:
    with (MONITORING / name).open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


def rule_groups() -> list[dict[str, Any]]:
    (rule,) = yaml_documents("prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    return list(rule["spec"]["groups"])


def rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of ``kind`` ("record" or "alert") over all groups."""
    return [r for g in rule_groups() for r in g["rules"] if kind in r]


def servicemonitors() -> list[dict[str, Any]]:
    docs = yaml_documents("servicemonitor.yaml")
    assert docs and all(d["kind"] == "ServiceMonitor" for d in docs)
    return docs


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics: matchLabels and matchExpressions."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        operator = expr["operator"]
        if operator == "In" and value not in expr["values"]:
            return False
        if operator == "NotIn" and value in expr["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def monitor_for(component: str) -> dict[str, Any]:
    """The one ServiceMonitor selecting the component's Service."""
    labels = {PART_OF: "elastic-inference", COMPONENT: component}
    matching = [m for m in servicemonitors() if selects(m["spec"]["selector"], labels)]
    assert len(matching) == 1, (
        f"{len(matching)} ServiceMonitors select the {component} Service (want exactly 1: "
        "none leaves it unscraped, two scrape its pods twice)")
    return matching[0]


def dashboards() -> dict[str, dict[str, Any]]:
    paths = sorted((MONITORING / "dashboards").glob("*.json"))
    assert paths, "no dashboards"
    return {p.name: json.loads(p.read_text()) for p in paths}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard["templating"]["list"])


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace Grafana variables ($name, ${name}); an undefined one fails the test."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"undefined dashboard variable ${name} in {text!r}"
        return values[name]

    return GRAFANA_VARIABLE.sub(value, text)


def adapter_config() -> dict[str, Any]:
    (config_map,) = yaml_documents("prometheus-adapter.yaml")
    assert config_map["kind"] == "ConfigMap"
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
    return config


def render_adapter_query(template: str, series: str, label_matchers: str,
                         group_by: str) -> str:
    """The metricsQuery as prometheus-adapter renders it (Go template, << >> delimiters)."""
    query = (template.replace("<<.Series>>", series)
             .replace("<<.LabelMatchers>>", label_matchers)
             .replace("<<.GroupBy>>", group_by))
    assert "<<" not in query, f"template field this test does not render: {template}"
    return query


def exposed_names(rule: dict[str, Any], series_names: set[str]) -> set[str]:
    """Metric names the adapter serves for ``rule`` (its name.matches / name.as)."""
    matches = rule["name"]["matches"]
    return {re.sub(matches, rule["name"]["as"], n) for n in series_names if re.search(matches, n)}
