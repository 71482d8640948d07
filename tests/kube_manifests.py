"""Render the Kubernetes manifests with tools/gen-k8s-yaml.sh and read them back, for tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "gen-k8s-yaml.sh"
TEMPLATES = REPO / "kubernetes"

Doc = dict[str, Any]

#: What the deploy tests render with (tests/deploy/conftest.py).
REGISTRY = "registry.example.com:5000/team/ei"
TAG = "1.2.3-rc1"
NAMESPACE = "ei-test"
AUTOSCALERS = ("ratio", "cpu", "keda")
ALL_OPTIONS = ("-a", "keda", "-m", "12", "-d", "GPU", "-G", "110", "-s", "5Gi",
               "-v", "200Gi", "-c", "nfs-client", "-O",
               "-H", "ei.example.com", "-i", "nginx", "-T", "ei-tls", "-I", "ingress-nginx", "-N",
               "-w", "ws://203.0.113.5:30081/ws", "-S", "10.20.0.0/16,2001:db8::/32",
               "-P", "6", "-A", "10.30.0.0/16,*.cams.example.com,fd00::/8")
# Renders every check runs on: each autoscaler, and every option at once.
VARIANTS = [("-a", a) for a in AUTOSCALERS] + [ALL_OPTIONS]


def run_renderer(*args: str, script: Path = SCRIPT,
                 stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``gen-k8s-yaml.sh ARGS``, output captured; the caller checks the exit status."""
    return subprocess.run(["bash", str(script), *args], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)


def load_docs(path: Path) -> list[Doc]:
    """The non-empty YAML documents of ``path``."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@dataclass
class Rendered:
    """One output directory of the renderer."""

    out: Path
    stdout: str
    stderr: str

    @cached_property
    def kustomization(self) -> Doc:
        docs = load_docs(self.out / "kustomization.yaml")
        assert len(docs) == 1
        return docs[0]

    @cached_property
    def files(self) -> list[Path]:
        """The rendered files, as the kustomization lists them."""
        return [self.out / name for name in self.kustomization["resources"]]

    @cached_property
    def docs(self) -> list[Doc]:
        return [doc for path in self.files for doc in load_docs(path)]

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str) -> Doc:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name}"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {doc["metadata"]["name"] for doc in self.of_kind(kind)}

    def pod_templates(self) -> Iterator[tuple[Doc, Doc]]:
        """(workload, pod template) of every Deployment."""
        for doc in self.of_kind("Deployment"):
            yield doc, doc["spec"]["template"]


def render(out: Path, *args: str, script: Path = SCRIPT, stdin: str | None = None) -> Rendered:
    """Render into ``out``; fail the test with the renderer's message if it fails."""
    result = run_renderer(*args, "-o", str(out), script=script, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return Rendered(out, result.stdout, result.stderr)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels form) selects ``labels``."""
    return all(labels.get(key) == value for key, value in selector.items())


RenderOnce = Callable[..., Rendered]


def service_of(pod: Doc) -> str:
    return str(pod["metadata"]["labels"]["app.kubernetes.io/component"])


def container_env(rendered: Rendered, container: Doc) -> dict[str, str]:
    """The environment a container starts with: its ConfigMaps, then its own variables."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(rendered.one("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            data = rendered.one("Secret", ref["name"])["stringData"]
            if ref["key"] in data or not ref.get("optional"):  # an optional key may be absent
                env[var["name"]] = data[ref["key"]]
    return env


def is_custom(doc: Doc) -> bool:
    """A kind from a CRD: an API group with a dot that is not Kubernetes' own."""
    group = doc["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def worker_autoscalers(rendered: Rendered, kind: str) -> list[Doc]:
    """The HPAs or ScaledObjects of the workers (the stream pool's: test_kubernetes_pool)."""
    return [doc for doc in rendered.of_kind(kind)
            if doc["metadata"]["labels"]["app.kubernetes.io/component"] == "infer"]
