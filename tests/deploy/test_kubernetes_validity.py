"""The rendered Kubernetes manifests are valid: kubernetes-validate for the built-in kinds on
the oldest and newest Kubernetes supported, schemas of our own for the custom kinds (which must
be strict enough to fail), templates that parse as YAML, a shellcheck-clean renderer.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.kube_manifests import (
    REPO,
    SCRIPT,
    TEMPLATES,
    Rendered,
    RenderOnce,
    is_custom,
    load_docs,
)

VENV_BIN = REPO / ".venv" / "bin"

# The oldest Kubernetes the manifests support (the preStop sleep action is on by default from
# 1.30) and the newest that kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_pass_kubernetes_validate(variant: Rendered, version: str,
                                                tmp_path: Path) -> None:
    builtin = [doc for doc in variant.docs if not is_custom(doc)]
    manifest = tmp_path / "builtin.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    result = subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", "-k", version,
                             str(manifest)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARN" not in output and "ERROR" not in output, output
    # Every document was checked against a schema, none skipped.
    assert output.count(" passed for resource ") == len(builtin), output


_METADATA = {"type": "object", "required": ["name"],
             "properties": {"name": {"type": "string", "minLength": 1},
                            "labels": {"type": "object",
                                       "additionalProperties": {"type": "string"}}}}
_TARGET = {"type": "object", "required": ["name"],
           "properties": {"name": {"type": "string", "minLength": 1},
                          "kind": {"type": "string"}, "apiVersion": {"type": "string"}}}
_SECRET_REFS = {"type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["parameter", "name", "key"],
                          "properties": {k: {"type": "string", "minLength": 1}
                                         for k in ("parameter", "name", "key")}}}


def _crd(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind},
                           "metadata": _METADATA, "spec": spec}}


# The fields these operators require (their CRD schemas are not available offline).
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": _crd("monitoring.coreos.com/v1", "ServiceMonitor", {
        "type": "object", "required": ["selector", "endpoints"],
        "properties": {
            "selector": {"type": "object", "minProperties": 1},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["port"],
                "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                               "interval": {"type": "string", "pattern": r"^\d+(ms|s|m|h)$"}}}},
        }}),
    "PrometheusRule": _crd("monitoring.coreos.com/v1", "PrometheusRule", {
        "type": "object", "required": ["groups"],
        "properties": {"groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "rules"],
            "properties": {"name": {"type": "string"}, "rules": {
                "type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["expr"],
                    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
                    "properties": {"expr": {"type": ["string", "integer"]},
                                   "record": {"type": "string"}, "alert": {"type": "string"},
                                   "labels": {"type": "object"},
                                   "annotations": {"type": "object"}}}}}}}}}),
    "ScaledObject": _crd("keda.sh/v1alpha1", "ScaledObject", {
        "type": "object", "required": ["scaleTargetRef", "triggers"],
        "properties": {
            "scaleTargetRef": _TARGET,
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "pollingInterval": {"type": "integer", "minimum": 1},
            "cooldownPeriod": {"type": "integer", "minimum": 0},
            "triggers": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["type", "metadata"],
                "properties": {"type": {"type": "string"},
                               # KEDA reads every trigger parameter as a string.
                               "metadata": {"type": "object",
                                            "additionalProperties": {"type": "string"}},
                               "authenticationRef": _TARGET}}},
        }}),
    "TriggerAuthentication": _crd("keda.sh/v1alpha1", "TriggerAuthentication", {
        "type": "object", "required": ["secretTargetRef"],
        "properties": {"secretTargetRef": _SECRET_REFS}}),
}


def test_custom_kinds_match_their_schemas(variant: Rendered) -> None:
    custom = [doc for doc in variant.docs if is_custom(doc)]
    assert custom, "no custom kinds rendered (the ServiceMonitor at least)"
    for doc in custom:
        assert doc["kind"] in CRD_SCHEMAS, f"no schema for the custom kind {doc['kind']}"
        jsonschema.validate(doc, CRD_SCHEMAS[doc["kind"]])


@pytest.mark.parametrize(("kind", "path", "bad"), [
    ("ScaledObject", ("spec", "scaleTargetRef"), None),
    ("ScaledObject", ("spec", "triggers", 0, "metadata", "listLength"), 2),
    ("TriggerAuthentication", ("spec", "secretTargetRef", 0, "key"), None),
])
def test_custom_schemas_reject_broken_objects(render_once: RenderOnce, kind: str,
                                              path: tuple[Any, ...], bad: Any) -> None:
    """The schemas are strict enough to fail: a missing field or a number for a string."""
    doc = json.loads(json.dumps(render_once("-a", "keda").of_kind(kind)[0]))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if bad is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, CRD_SCHEMAS[kind])


def test_templates_parse_as_yaml() -> None:
    """Placeholders and guards keep every template valid YAML, so editors and linters work."""
    templates = sorted(TEMPLATES.glob("*.yaml"))
    assert templates
    for path in templates:
        assert load_docs(path), path


def test_renderer_is_shellcheck_clean() -> None:
    # -x follows the files it sources, which are checked too.
    result = subprocess.run([str(VENV_BIN / "shellcheck"), "-x", str(SCRIPT),
                             str(SCRIPT.with_name("gen-k8s-redis.sh")),
                             str(SCRIPT.with_name("gen-k8s-render.sh"))],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
