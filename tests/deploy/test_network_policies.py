"""The NetworkPolicies and the Ingress's TLS that tools/gen-k8s-yaml.sh renders: every policy
selects pods that exist, names ports they have, and together they let in exactly the intended
peers on the intended ports (evaluated here with the NetworkPolicy rules of the Kubernetes API:
policies add up, a pod selected by none for a direction is open in that direction).
kubernetes-validate checks the documents themselves (tests/deploy/test_kubernetes_validity.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.kube_manifests import Doc, Rendered, render, run_renderer

NAMESPACE = "ei-test"
ARGS = ("-r", "registry.example.com/ei", "-n", NAMESPACE)
COMPONENTS = ("gateway", "websocket", "redis", "infer", "stream", "analysis", "track")


@dataclass(frozen=True)
class Peer:
    """A client or server: a pod (namespace and labels), or something outside the cluster,
    at ``address`` if that matters (ipBlock rules)."""

    name: str
    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    ns_labels: dict[str, str] = field(default_factory=dict, hash=False)
    address: str = ""

    @property
    def outside(self) -> bool:
        return not self.namespace


def pod_peer(namespace: str, labels: dict[str, str], name: str) -> Peer:
    return Peer(name, namespace, labels, {"kubernetes.io/metadata.name": namespace})


OUTSIDE = Peer("outside")
INGRESS = pod_peer("traefik", {"app.kubernetes.io/name": "traefik"}, "ingress")
PROMETHEUS = pod_peer("monitoring", {"app.kubernetes.io/name": "prometheus"}, "prometheus")
STRANGER = pod_peer("other", {"app.kubernetes.io/name": "prometheus-not"}, "stranger")


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and In/NotIn/Exists expressions)."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def admits(entries: list[Doc] | None, peer: Peer, own_namespace: str) -> bool:
    """Whether a rule's ``from``/``to`` list admits ``peer`` (absent: everyone)."""
    if entries is None:
        return True
    for entry in entries:
        if "ipBlock" in entry:
            if in_block(entry["ipBlock"], peer.address):
                return True
            continue
        if peer.outside:
            continue
        ns_sel, pod_sel = entry.get("namespaceSelector"), entry.get("podSelector")
        ns_ok = (matches(ns_sel, peer.ns_labels) if ns_sel is not None
                 else peer.namespace == own_namespace)
        if ns_ok and (pod_sel is None or matches(pod_sel, peer.labels)):
            return True
    return False


def in_block(block: Doc, address: str) -> bool:
    """Whether an ipBlock admits ``address`` (a peer without one, such as a pod: no)."""
    if not address:
        return False
    ip = ipaddress.ip_address(address)

    def within(cidr: str) -> bool:
        net = ipaddress.ip_network(cidr)
        return net.version == ip.version and ip in net
    return within(block["cidr"]) and not any(within(c) for c in block.get("except", []))


@dataclass
class Pod:
    component: str
    labels: dict[str, str]
    ports: dict[str, int]  # container port name -> number

    def peer(self) -> Peer:
        return pod_peer(NAMESPACE, self.labels, self.component)


def pods(rendered: Rendered) -> dict[str, Pod]:
    """One pod per component (a worker and a stream stand for the others of their kind)."""
    found: dict[str, Pod] = {}
    for _, template in rendered.pod_templates():
        labels = template["metadata"]["labels"]
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"]
                 for p in c.get("ports", [])}
        found.setdefault(labels["app.kubernetes.io/component"], Pod(
            labels["app.kubernetes.io/component"], labels, ports))
    return found


def policies(rendered: Rendered, pod: Pod, direction: str) -> list[Doc]:
    return [p for p in rendered.of_kind("NetworkPolicy")
            if direction in p["spec"]["policyTypes"] and matches(p["spec"]["podSelector"],
                                                                 pod.labels)]


def port_of(rule_port: Doc, pod: Pod) -> int:
    port = rule_port["port"]
    if isinstance(port, str):
        assert port in pod.ports, f"{pod.component} has no port named {port}"
        return pod.ports[port]
    return int(port)


def ingress_allowed(rendered: Rendered, pod: Pod, peer: Peer) -> set[int]:
    """The pod's TCP ports ``peer`` may connect to (its named ports and 22 are tried)."""
    chosen = policies(rendered, pod, "Ingress")
    candidates = set(pod.ports.values()) | {22}
    if not chosen:
        return candidates
    allowed: set[int] = set()
    for policy in chosen:
        for rule in policy["spec"].get("ingress", []):
            if not admits(rule.get("from"), peer, NAMESPACE):
                continue
            if "ports" not in rule:
                allowed |= candidates
            allowed |= {port_of(p, pod) for p in rule.get("ports", [])
                        if p.get("protocol", "TCP") == "TCP"}
    return allowed & candidates


def egress_allowed(rendered: Rendered, pod: Pod, peer: Peer, port: int,
                   protocol: str = "TCP") -> bool:
    chosen = policies(rendered, pod, "Egress")
    if not chosen:
        return True
    target = pods(rendered).get(peer.name)
    for policy in chosen:
        for rule in policy["spec"].get("egress", []):
            if not admits(rule.get("to"), peer, NAMESPACE):
                continue
            for p in rule.get("ports", [{"port": port, "protocol": protocol}]):
                number = port_of(p, target) if isinstance(p["port"], str) and target else \
                    p["port"]
                if number == port and p.get("protocol", "TCP") == protocol:
                    return True
    return False


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    def one(*extra: str) -> Rendered:
        return render(tmp_path_factory.mktemp("k8s") / "out", *ARGS, *extra)
    external = tmp_path_factory.mktemp("url") / "url"
    external.write_text("rediss://:secret-password-1234@redis.example.net:6380/0\n")
    return {"default": one(), "ingress-ns": one("-I", "traefik"),
            "tls": one("-T", "ei-tls", "-H", "ei.example.com"),
            "tls-any-host": one("-T", "ei-tls"),
            "node-ports": one("-N", "-w", "ws://203.0.113.5:30081/ws"),
            "sink-networks": one("-S", "10.20.0.0/16,2001:db8::/32"),
            "external-redis": one("-u", str(external))}


def test_every_policy_selects_existing_pods(rendered: dict[str, Rendered]) -> None:
    for variant, r in rendered.items():
        all_pods = [t["metadata"]["labels"] for _, t in r.pod_templates()]
        names = r.names("NetworkPolicy")
        assert {"ei-default-deny-ingress", "ei-gateway", "ei-websocket", "ei-metrics",
                "ei-infer-egress", "ei-track-egress"} <= names, variant
        assert ("redis" in names) == (variant != "external-redis"), variant
        assert ("ei-websocket-nodeport" in names) == (variant == "node-ports"), variant
        for policy in r.of_kind("NetworkPolicy"):
            assert policy["metadata"]["namespace"] == NAMESPACE
            selected = [labels for labels in all_pods
                        if matches(policy["spec"]["podSelector"], labels)]
            assert selected, f"{variant}: {policy['metadata']['name']} selects no pod"
        # Every pod denies what no policy lets in.
        deny = r.one("NetworkPolicy", "ei-default-deny-ingress")["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def expected_ingress(pod: Pod, peer: Peer, ingress_ns: bool) -> set[int]:
    """The intended policy, written out: the ports ``peer`` may reach on ``pod``."""
    allowed: set[int] = set()
    if pod.component != "redis" and peer is PROMETHEUS:
        allowed.add(pod.ports["metrics"])
    if pod.component == "gateway":
        allowed.add(pod.ports["http"])
    if pod.component == "websocket" and not peer.outside and (
            peer.name == "gateway" or peer is INGRESS or not ingress_ns):
        allowed.add(pod.ports["http"])
    if pod.component == "redis" and peer.namespace == NAMESPACE:
        allowed.add(pod.ports["redis"])
    return allowed


@pytest.mark.parametrize("variant", ["default", "ingress-ns"])
def test_each_pod_admits_exactly_the_intended_peers_and_ports(
        rendered: dict[str, Rendered], variant: str) -> None:
    r = rendered[variant]
    our_pods = pods(r)
    assert set(our_pods) == set(COMPONENTS)
    peers = [OUTSIDE, INGRESS, PROMETHEUS, STRANGER, *(p.peer() for p in our_pods.values())]
    for pod in our_pods.values():
        for peer in peers:
            assert ingress_allowed(r, pod, peer) == expected_ingress(
                pod, peer, variant == "ingress-ns"), f"{peer.name} -> {pod.component}"
    # Spelled out for the reader: from outside the cluster only the gateway's port.
    assert {c: ingress_allowed(r, p, OUTSIDE) for c, p in our_pods.items()} == {
        c: ({8080} if c == "gateway" else set()) for c in COMPONENTS}


def test_node_port_opens_the_websocket_port_to_all(rendered: dict[str, Rendered]) -> None:
    r = rendered["node-ports"]
    websocket = pods(r)["websocket"]
    assert ingress_allowed(r, websocket, OUTSIDE) == {8081}
    assert ingress_allowed(r, pods(r)["infer"], OUTSIDE) == set()


def test_workers_reach_only_redis_and_dns(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    by = pods(r)
    worker, redis_pod = by["infer"], by["redis"].peer()
    assert egress_allowed(r, worker, redis_pod, 6379)
    assert egress_allowed(r, worker, OUTSIDE, 53, "UDP")
    assert egress_allowed(r, worker, OUTSIDE, 53, "TCP")
    for peer, port in ((OUTSIDE, 443), (OUTSIDE, 6379), (by["gateway"].peer(), 8080),
                       (by["websocket"].peer(), 8081), (PROMETHEUS, 9090),
                       (redis_pod, 22), (by["stream"].peer(), 8000)):
        assert not egress_allowed(r, worker, peer, port), f"worker -> {peer.name}:{port}"
    # Only the workers and the trackers are held back: streams read cameras, runners fetch
    # URL sources.
    for component in ("stream", "analysis", "gateway", "websocket", "redis"):
        assert not policies(r, by[component], "Egress"), component
    # An external Redis: its port on any address (its address may be a name).
    ext = rendered["external-redis"]
    for component in ("infer", "track"):
        (policy,) = policies(ext, pods(ext)[component], "Egress")
        assert policy["spec"]["egress"][1] == {"ports": [{"port": 6380}]}


SINK_PORTS = (80, 443, 1883, 8883)
#: Addresses inside the cluster or next to it: private, shared (CGNAT), loopback, link-local
#: (the cloud metadata service at 169.254.169.254), IPv6 unique-local and link-local.
INSIDE = ("10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "100.64.0.1",
          "127.0.0.1", "169.254.169.254", "fd00::1", "fe80::1", "::1", "::ffff:10.0.0.1")
PUBLIC = ("203.0.113.9", "8.8.8.8", "2001:db8::1", "2606:4700::1111")


def test_trackers_reach_redis_dns_and_public_sinks_only(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    by = pods(r)
    track, redis_pod = by["track"], by["redis"].peer()
    (policy,) = policies(r, track, "Egress")
    assert policy["metadata"]["name"] == "ei-track-egress"
    assert egress_allowed(r, track, redis_pod, 6379)
    assert egress_allowed(r, track, OUTSIDE, 53, "UDP")
    assert egress_allowed(r, track, OUTSIDE, 53, "TCP")
    for address in PUBLIC:
        sink = Peer("sink", address=address)
        for port in SINK_PORTS:
            assert egress_allowed(r, track, sink, port), f"track -> {address}:{port}"
        for port in (22, 6379, 8080, 5432):
            assert not egress_allowed(r, track, sink, port), f"track -> {address}:{port}"
        assert not egress_allowed(r, track, sink, 1883, "UDP")
    for address in INSIDE:
        for port in SINK_PORTS:
            assert not egress_allowed(r, track, Peer("near", address=address), port), \
                f"track -> {address}:{port}"
    # The cluster's own pods on their ports or the sinks' ports: no.
    for peer, port in ((by["gateway"].peer(), 8080), (by["websocket"].peer(), 8081),
                       (by["stream"].peer(), 8000), (PROMETHEUS, 9090), (redis_pod, 443),
                       (STRANGER, 80)):
        assert not egress_allowed(r, track, peer, port), f"track -> {peer.name}:{port}"


def test_sink_networks_replace_the_public_internet(rendered: dict[str, Rendered]) -> None:
    """-S: the trackers reach those networks on the sinks' ports, nothing else."""
    r = rendered["sink-networks"]
    track = pods(r)["track"]
    for address in ("10.20.0.5", "10.20.255.1", "2001:db8::1"):
        assert egress_allowed(r, track, Peer("broker", address=address), 1883), address
        assert not egress_allowed(r, track, Peer("broker", address=address), 6379), address
    for address in ("10.21.0.1", "8.8.8.8", "2606:4700::1111", "169.254.169.254"):
        assert not egress_allowed(r, track, Peer("other", address=address), 443), address
    assert egress_allowed(r, track, pods(r)["redis"].peer(), 6379)


def test_ingress_tls_section(rendered: dict[str, Rendered]) -> None:
    spec = rendered["tls"].one("Ingress", "ei-gateway")["spec"]
    assert spec["tls"] == [{"secretName": "ei-tls", "hosts": ["ei.example.com"]}]
    assert spec["rules"][0]["host"] == "ei.example.com"
    assert rendered["tls-any-host"].one("Ingress", "ei-gateway")["spec"]["tls"] == [
        {"secretName": "ei-tls"}]
    assert "tls" not in rendered["default"].one("Ingress", "ei-gateway")["spec"]


@pytest.mark.parametrize(("args", "message"), [
    (("-T", "Bad_Secret"), "invalid TLS secret name"),
    (("-S", "10.0.0.0"), "invalid network '10.0.0.0' in -S"),
    (("-S", "10.0.0.0/8,example.com/24"), "invalid network 'example.com/24' in -S"),
    (("-I", "Ingress NS"), "invalid ingress controller namespace"),
])
def test_bad_tls_and_namespace_options(tmp_path: Path, args: tuple[str, ...],
                                       message: str) -> None:
    out = tmp_path / "out"
    result = run_renderer("-o", str(out), *ARGS, *args)
    assert result.returncode == 2 and message in result.stderr
    assert not out.exists()
