"""The Redis of the Kubernetes manifests: one ACL user per component (core/acl.py), each
Deployment with only its own user's Secret, passwords kept, given, rotated and never printed,
an external Redis; the users are loaded into real servers by
tests/integration/test_redis_acl.py."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from elastic_inference.core import acl
from tests.kube_manifests import (
    ALL_OPTIONS,
    NAMESPACE,
    REGISTRY,
    Doc,
    Rendered,
    RenderOnce,
    container_env,
    render,
    run_renderer,
    service_of,
)

#: The services that are Deployments of the project's images, each with its Redis user.
EI_SERVICES = ("stream", "infer", "websocket", "gateway", "analysis", "track")


def secret_data(rendered: Rendered, component: str = "stream") -> dict[str, str]:
    """The Secret of one component's Redis user."""
    return dict(rendered.one("Secret", f"ei-redis-{component}")["stringData"])


def passwords(rendered: Rendered) -> dict[str, str]:
    return {c.component: secret_data(rendered, c.component)["redis-password"]
            for c in acl.COMPONENTS}


def test_in_cluster_redis(render_once: RenderOnce) -> None:
    rendered = render_once()
    given = passwords(rendered)
    for component, password in given.items():
        secret = secret_data(rendered, component)
        user = acl.BY_COMPONENT[component].user
        assert re.fullmatch(r"[0-9a-f]{48}", password)
        assert secret == {"redis-url": f"redis://{user}:{password}@redis:6379/0",
                          "redis-address": f"redis.{NAMESPACE}.svc:6379",
                          "redis-username": user, "redis-password": password}
    assert len(set(given.values())) == len(given)
    # The users' aclfile, with hashes only (core/acl.py renders it; the ACL test loads it).
    server = rendered.one("Secret", "ei-redis")["stringData"]
    assert server == {"users.acl": acl.aclfile(given)}
    config = rendered.one("ConfigMap", "redis-config")["data"]["redis.conf"]
    assert "appendonly yes" in config.splitlines()
    assert "aclfile /etc/redis/auth/users.acl" in config.splitlines()
    assert "requirepass" not in config
    pod = rendered.one("Deployment", "redis")["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {"name": "data", "emptyDir": {}}
    assert rendered.names("PersistentVolumeClaim") == {"ei-media"}
    # The probe logs in as ei-ops, its password in the environment, none in the pod spec.
    (container,) = pod["containers"]
    assert "--user ei-ops ping" in container["readinessProbe"]["exec"]["command"][-1]
    assert container_env(rendered, container) == {"REDISCLI_AUTH": given["ops"]}
    assert not [p for p in given.values() if p in json.dumps(pod)]
    session = rendered.one("Secret", "ei-session")["stringData"]["session-secret"]
    # As `ei up` makes it (secrets.token_urlsafe(32)), and long enough for the settings.
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", session)
    assert len(base64.urlsafe_b64decode(session + "=")) == 32
    for name in ("ei-gateway", "ei-websocket"):
        (container,) = rendered.one("Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container_env(rendered, container)["EI_SESSION_SECRET"] == session


def secrets_used(pod: Doc) -> set[str]:
    """Names of the Secrets a pod reads: in its containers' environment and its volumes."""
    names = {var["valueFrom"]["secretKeyRef"]["name"] for c in pod["spec"]["containers"]
             for var in c.get("env", []) if "secretKeyRef" in var.get("valueFrom", {})}
    names |= {source["secretRef"]["name"] for c in pod["spec"]["containers"]
              for source in c.get("envFrom", []) if "secretRef" in source}
    names |= {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    return names


def test_each_deployment_gets_only_its_own_redis_user(variant: Rendered) -> None:
    for workload, pod in variant.pod_templates():
        service = service_of(pod)
        expected = {"redis": {"ei-redis", "ei-redis-ops"}}.get(service, {f"ei-redis-{service}"})
        if service in ("gateway", "websocket"):
            expected = expected | {"ei-session"}
        if service == "track":
            expected = expected | {"ei-track-sinks"}
        assert secrets_used(pod) == expected, workload["metadata"]["name"]
        if service in EI_SERVICES:
            (container,) = pod["spec"]["containers"]
            url = container_env(variant, container)["EI_REDIS_URL"]
            assert url.startswith(f"redis://{acl.BY_COMPONENT[service].user}:")
    # The admin user's Secret is mounted nowhere: it is for `ei auth` and the like.
    assert variant.one("Secret", "ei-redis-admin")


def test_redis_on_a_persistent_volume_claim(render_once: RenderOnce) -> None:
    rendered = render_once(*ALL_OPTIONS)
    claim = rendered.one("PersistentVolumeClaim", "redis-data")
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    pod = rendered.one("Deployment", "redis")["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {"name": "data",
                                 "persistentVolumeClaim": {"claimName": "redis-data"}}



def test_external_redis(tmp_path: Path) -> None:
    url = "rediss://worker:p%40ss%3Aword@redis.example.com:6380/2"
    url_file = tmp_path / "url"
    url_file.write_text(url + "\n")
    rendered = render(tmp_path / "out", "-r", REGISTRY, "-a", "keda", "-u", str(url_file))
    for component in acl.BY_COMPONENT:
        assert secret_data(rendered, component) == {
            "redis-url": url, "redis-address": "redis.example.com:6380",
            "redis-username": "worker", "redis-password": "p@ss:word"}
    assert not [doc for doc in rendered.docs if doc["metadata"]["name"].startswith("redis")]
    for obj in rendered.of_kind("ScaledObject"):
        metadata = obj["spec"]["triggers"][0]["metadata"]
        assert (metadata["enableTLS"], metadata["databaseIndex"]) == ("true", "2")
    assert "p@ss" not in rendered.stdout + rendered.stderr


def test_external_redis_cluster(tmp_path: Path) -> None:
    """A Redis Cluster URL reaches every service as it is; KEDA's one-server scaler is
    refused with it."""
    url = "redis+cluster://worker:secret-0123456789@redis-cluster.data.svc:6379/0"
    url_file = tmp_path / "url"
    url_file.write_text(url + "\n")
    rendered = render(tmp_path / "out", "-r", REGISTRY, "-u", str(url_file))
    for component in acl.BY_COMPONENT:
        assert secret_data(rendered, component) == {
            "redis-url": url, "redis-address": "redis-cluster.data.svc:6379",
            "redis-username": "worker", "redis-password": "secret-0123456789"}
    refused = run_renderer("-o", str(tmp_path / "keda"), "-r", REGISTRY, "-a", "keda", "-u",
                           str(url_file))
    assert refused.returncode == 2 and "does not go with a Redis Cluster" in refused.stderr
    assert "secret-0123456789" not in rendered.stdout + rendered.stderr + refused.stderr


def test_passwords_are_kept_given_rotated_and_never_printed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = render(out, "-r", REGISTRY)
    kept = passwords(first)
    session = first.one("Secret", "ei-session")["stringData"]
    for name in ("secret.yaml", "redis.yaml"):
        assert (out / name).stat().st_mode & 0o777 == 0o600
    again = render(out, "-r", REGISTRY, "-a", "cpu")
    assert passwords(again) == kept
    assert again.one("Secret", "ei-session")["stringData"] == session
    other = render(tmp_path / "other", "-r", REGISTRY)
    assert not set(passwords(other).values()) & set(kept.values())
    assert other.one("Secret", "ei-session")["stringData"] != session
    given = "Given.Password_0123456789"
    from_stdin = render(out, "-r", REGISTRY, "-p", "-", stdin=f"gateway {given}\n\n")
    assert passwords(from_stdin) == {**kept, "gateway": given}
    assert secret_data(from_stdin, "gateway")["redis-url"] == \
        f"redis://ei-gateway:{given}@redis:6379/0"
    rotated = render(out, "-r", REGISTRY, "-R", "stream", "-R", "keda")
    changed = {c for c, p in passwords(rotated).items() if p != passwords(from_stdin)[c]}
    assert changed == {"stream", "keda"}
    assert rotated.one("Secret", "ei-redis")["stringData"]["users.acl"] == \
        acl.aclfile(passwords(rotated))
    for result in (first, again, from_stdin, rotated):
        for password in (*kept.values(), given, *passwords(rotated).values()):
            assert password not in result.stdout + result.stderr


@pytest.mark.parametrize(("option", "given", "message", "hidden"), [
    ("-p", "stream too-short", "must be 16 to 128", "too-short"),
    ("-q", "http://user:Hidden.Pass@broker", "is not mqtt[s]://", "Hidden.Pass"),
])
def test_a_bad_given_secret_is_refused_unshown(tmp_path: Path, option: str, given: str,
                                               message: str, hidden: str) -> None:
    """A bad Redis password (-p) or MQTT URL (-q): a message that does not show it."""
    result = run_renderer("-o", str(tmp_path / "out"), "-r", REGISTRY, option, "-",
                          stdin=given + "\n")
    assert result.returncode == 2 and message in result.stderr
    assert hidden not in result.stderr and not (tmp_path / "out").exists()


def sinks(rendered: Rendered) -> dict[str, str]:
    return dict(rendered.one("Secret", "ei-track-sinks")["stringData"])


def track_env(rendered: Rendered) -> dict[str, str]:
    (container,) = rendered.one("Deployment", "ei-track")["spec"]["template"]["spec"][
        "containers"]
    return container_env(rendered, container)


def test_the_sinks_secret_is_generated_kept_and_the_mqtt_url_given(tmp_path: Path) -> None:
    """The webhook secret is made like the session secret and kept across renders; the MQTT
    URL comes from -q, is kept until an empty one is given, and is never printed."""
    out = tmp_path / "out"
    first = render(out, "-r", REGISTRY)
    secret = sinks(first)["webhook-secret"]
    assert set(sinks(first)) == {"webhook-secret"}  # no broker given: no URL
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert secret != first.one("Secret", "ei-session")["stringData"]["session-secret"]
    env = track_env(first)
    assert env["EI_WEBHOOK_SECRET"] == secret and "EI_MQTT_URL" not in env
    (container,) = first.one("Deployment", "ei-track")["spec"]["template"]["spec"]["containers"]
    mqtt_ref = {v["name"]: v for v in container["env"]}["EI_MQTT_URL"]["valueFrom"]
    assert mqtt_ref == {"secretKeyRef": {"name": "ei-track-sinks", "key": "mqtt-url",
                                         "optional": True}}
    url = "mqtts://ei-track:Br0ker.Pass@broker.example.com:8883"
    given = render(out, "-r", REGISTRY, "-q", "-", stdin=url + "\n")
    assert sinks(given) == {"webhook-secret": secret, "mqtt-url": url}
    assert track_env(given)["EI_MQTT_URL"] == url
    kept = render(out, "-r", REGISTRY, "-a", "cpu")
    assert sinks(kept) == {"webhook-secret": secret, "mqtt-url": url}
    removed = render(out, "-r", REGISTRY, "-q", "-", stdin="\n")
    assert sinks(removed) == {"webhook-secret": secret}
    assert sinks(render(tmp_path / "other", "-r", REGISTRY))["webhook-secret"] != secret
    for result in (first, given, kept, removed):
        assert "Br0ker.Pass" not in result.stdout + result.stderr
        assert secret not in result.stdout + result.stderr
