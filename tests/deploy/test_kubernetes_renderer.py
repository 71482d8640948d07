"""tools/gen-k8s-yaml.sh itself: bad arguments fail with a message, it replaces only what it
wrote, its kustomization lists what it renders, and the monitoring manifests and dashboards are
included, left out on request, or of any shape. What it renders: test_kubernetes.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.kube_manifests import (
    NAMESPACE,
    REGISTRY,
    REPO,
    SCRIPT,
    TEMPLATES,
    Rendered,
    RenderOnce,
    is_custom,
    load_docs,
    render,
    run_renderer,
    worker_autoscalers,
)

MONITORING = TEMPLATES / "monitoring"


# --------------------------------------------------------------------------- the renderer


BAD_ARGUMENTS = [
    ((), "registry is required"),
    (("-r", "https://registry.example.com"), "invalid registry"),
    (("-r", "registry.example.com/Team"), "invalid registry"),
    (("-r", "registry.example.com/ei:1.0"), "invalid registry"),
    (("-r", "registry.example.com/"), "invalid registry"),
    (("-r", "r.example.com", "-t", "-bad"), "invalid tag"),
    (("-r", "r.example.com", "-t", "a" * 129), "invalid tag"),
    (("-r", "r.example.com", "-t", "1.0 beta"), "invalid tag"),
    (("-r", "r.example.com", "-n", "Elastic_Inference"), "invalid namespace"),
    (("-r", "r.example.com", "-n", "e" * 64), "invalid namespace"),
    (("-r", "r.example.com", "-a", "vpa"), "invalid autoscaler"),
    (("-r", "r.example.com", "-m", "0"), "invalid -m"),
    (("-r", "r.example.com", "-P", "0"), "invalid -P"),
    (("-r", "r.example.com", "-P", "1000"), "invalid -P"),
    (("-r", "r.example.com", "-A", "cam.example.com,10.0.0.0/8 x"), "invalid entry '10.0.0.0/8 x'"),
    (("-r", "r.example.com", "-A", 'cam",evil'), "invalid entry 'cam\"'"),
    (("-r", "r.example.com", "-d", "TPU"), "invalid device"),
    (("-r", "r.example.com", "-G", "render"), "invalid group"),
    (("-r", "r.example.com", "-s", "5GB"), "invalid Redis storage size"),
    (("-r", "r.example.com", "-v", "10G"), "invalid media volume size"),
    (("-r", "r.example.com", "-v", "0Gi"), "invalid media volume size"),
    (("-r", "r.example.com", "-c", "NFS_Client"), "invalid storage class"),
    (("-r", "r.example.com", "-H", "Bad Host"), "invalid Ingress host"),
    (("-r", "r.example.com", "-w", "http://example.com/ws"), "invalid websocket URL"),
    (("-r", "r.example.com", "-N"), "-N needs -w"),
    (("-r", "r.example.com", "-p", "/nonexistent/password"), "cannot read file"),
    (("-r", "r.example.com", "-p", "-"), "expected lines COMPONENT PASSWORD"),
    (("-r", "r.example.com", "-R", "camera"), "-R camera: no such component"),
    (("-r", "r.example.com", "-u", "-", "-R", "stream"), "with -u the password is part of"),
    (("-r", "r.example.com", "-u", "-"), "is not redis[s]://"),
    (("-r", "r.example.com", "-u", "-", "-s", "1Gi"), "does not go with -u"),
    (("-r", "r.example.com", "-x"), "unknown option -x"),
    (("-r",), "needs a value"),
    (("-r", "r.example.com", "extra"), "unexpected argument"),
]


@pytest.mark.parametrize(("args", "message"), BAD_ARGUMENTS,
                         ids=[" ".join(args) or "none" for args, _ in BAD_ARGUMENTS])
def test_bad_arguments_fail_with_a_message(tmp_path: Path, args: tuple[str, ...],
                                           message: str) -> None:
    out = tmp_path / "out"
    # Options first: getopts stops at the first operand, and "-o" must still be read.
    result = run_renderer("-o", str(out), *args, stdin="short\n")
    assert result.returncode == 2
    assert message in result.stderr
    assert not out.exists()


def test_help(tmp_path: Path) -> None:
    result = run_renderer("-h")
    assert result.returncode == 0 and result.stdout.startswith("Usage: gen-k8s-yaml.sh -r ")


def test_refuses_a_directory_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    result = run_renderer("-r", REGISTRY, "-o", str(tmp_path))
    assert result.returncode == 2 and "holds no earlier render" in result.stderr
    assert mine.read_text() == "mine"


def test_replaces_an_earlier_render(tmp_path: Path) -> None:
    out = tmp_path / "out"
    render(out, "-r", REGISTRY)
    assert (out / "hpa.yaml").exists()
    rendered = render(out, "-r", REGISTRY, "-a", "keda")
    assert not (out / "hpa.yaml").exists() and (out / "keda.yaml").exists()
    assert not worker_autoscalers(rendered, "HorizontalPodAutoscaler")
    assert not list(tmp_path.glob(".gen-k8s-yaml.*")), "staging directory left behind"


def listed_templates() -> list[str]:
    """Every template kubernetes/kustomization.yaml lists, whatever the options."""
    text = (TEMPLATES / "kustomization.yaml").read_text()
    return re.findall(r"^  - (\S+\.yaml)(?:  # (?:if|unless) [A-Z_]+)?$", text, re.MULTILINE)


def test_kustomization_lists_the_templates() -> None:
    listed = listed_templates()
    source = yaml.safe_load((TEMPLATES / "kustomization.yaml").read_text())
    # The renderer appends the monitoring entries: resources must stay the last key.
    assert list(source)[-1] == "resources" and len(source["resources"]) == len(listed)
    assert all((TEMPLATES / name).is_file() for name in listed)
    templates = {p.name for p in TEMPLATES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == templates, "a template the kustomization does not list"


def test_rendered_kustomization_lists_every_rendered_file(variant: Rendered) -> None:
    listed = set(variant.kustomization["resources"])
    assert all((variant.out / name).is_file() for name in listed)
    written = {str(p.relative_to(variant.out)) for p in variant.out.rglob("*.yaml")}
    assert written - {"kustomization.yaml"} == listed
    for path in variant.files:
        assert path.read_text().startswith("# Rendered by tools/gen-k8s-yaml.sh")


# --------------------------------------------------------------------------- monitoring


def test_monitoring_manifests_and_dashboards_are_included(render_once: RenderOnce) -> None:
    rendered = render_once()
    manifests = [p for p in sorted(MONITORING.rglob("*.y*ml"))
                 if re.search(r"^kind:", p.read_text(), re.MULTILINE)]
    dashboards = sorted((MONITORING / "dashboards").glob("*.json"))
    assert manifests and dashboards, "kubernetes/monitoring/ is empty"
    for path in manifests:
        relative = path.relative_to(TEMPLATES)
        assert str(relative) in rendered.kustomization["resources"]
        source = path.read_text().replace("${NAMESPACE}", NAMESPACE)
        assert load_docs(rendered.out / relative) == list(
            filter(None, yaml.safe_load_all(source)))
    for path in dashboards:
        configmap = rendered.one("ConfigMap", f"ei-dashboard-{path.stem}")
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(configmap["data"][path.name]) == json.loads(path.read_text())


def copy_renderer(root: Path) -> Path:
    """A repository of the script and the templates, without kubernetes/monitoring (and the
    package, where the script finds the Redis users)."""
    shutil.copytree(TEMPLATES, root / "kubernetes", ignore=shutil.ignore_patterns("monitoring"))
    (root / "apps").symlink_to(REPO / "apps")
    (root / "tools").mkdir()
    for sourced in ("gen-k8s-redis.sh", "gen-k8s-render.sh"):
        shutil.copy2(SCRIPT.with_name(sourced), root / "tools")
    return Path(shutil.copy2(SCRIPT, root / "tools" / SCRIPT.name))


def test_renders_without_monitoring(tmp_path: Path) -> None:
    script = copy_renderer(tmp_path)
    rendered = render(tmp_path / "out", "-r", REGISTRY, script=script)
    assert not [n for n in rendered.kustomization["resources"] if n.startswith("monitoring/")]
    assert rendered.of_kind("HorizontalPodAutoscaler")


def test_monitoring_can_be_left_out(render_once: RenderOnce) -> None:
    rendered = render_once("-M")
    assert not [n for n in rendered.kustomization["resources"] if n.startswith("monitoring/")]
    assert not (rendered.out / "monitoring").exists()
    assert not [doc for doc in rendered.docs if is_custom(doc)]


def test_monitoring_files_of_any_shape(tmp_path: Path) -> None:
    script = copy_renderer(tmp_path)
    monitoring = tmp_path / "kubernetes" / "monitoring"
    (monitoring / "extra").mkdir(parents=True)
    (monitoring / "extra" / "monitor.yml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n"
        "  name: m\n  namespace: ${NAMESPACE}\n  labels: {app.kubernetes.io/part-of: x}\n"
        "spec: {selector: {matchLabels: {a: b}}, endpoints: [{port: metrics}]}\n")
    (monitoring / "tests").mkdir()
    (monitoring / "tests" / "rules.test.yaml").write_text("rule_files: [x.yaml]\ntests: []\n")
    (monitoring / "dashboards").mkdir()
    dashboard = '  {"title": "A board", "panels": [{"expr": "sum(x{a=\\"b\\"})"}]}\n\n'
    (monitoring / "dashboards" / "My Board.json").write_text(dashboard)
    rendered = render(tmp_path / "out", "-r", REGISTRY, "-n", NAMESPACE, script=script)
    assert rendered.kustomization["resources"][-2:] == ["monitoring/extra/monitor.yml",
                                                        "monitoring/dashboards.yaml"]
    assert rendered.one("ServiceMonitor", "m")["metadata"]["namespace"] == NAMESPACE
    assert not (rendered.out / "monitoring" / "tests").exists()
    configmap = rendered.one("ConfigMap", "ei-dashboard-my-board")
    assert json.loads(configmap["data"]["My Board.json"]) == json.loads(dashboard)


def test_unknown_placeholder_fails(tmp_path: Path) -> None:
    script = copy_renderer(tmp_path)
    config = tmp_path / "kubernetes" / "config.yaml"
    config.write_text(config.read_text() + "  EI_BATCH_TYPO: ${BATCH}\n")
    result = run_renderer("-r", REGISTRY, "-o", str(tmp_path / "out"), script=script)
    assert result.returncode == 2
    assert "kubernetes/config.yaml: unknown placeholder ${BATCH}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_renderer_is_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)
