"""Fixtures of the deploy tests: renders of the Kubernetes manifests, each made once."""

from __future__ import annotations

import pytest

from tests.kube_manifests import NAMESPACE, REGISTRY, TAG, VARIANTS, Rendered, RenderOnce, render


@pytest.fixture(scope="module")
def render_once(tmp_path_factory: pytest.TempPathFactory) -> RenderOnce:
    """Renders with the test registry, tag and namespace plus ARGS, each set of ARGS once."""
    cache: dict[tuple[str, ...], Rendered] = {}

    def get(*args: str) -> Rendered:
        if args not in cache:
            out = tmp_path_factory.mktemp("k8s") / "out"
            cache[args] = render(out, "-r", REGISTRY, "-t", TAG, "-n", NAMESPACE, *args)
        return cache[args]

    return get


@pytest.fixture(params=VARIANTS, ids=lambda args: " ".join(args))
def variant(request: pytest.FixtureRequest, render_once: RenderOnce) -> Rendered:
    return render_once(*request.param)
