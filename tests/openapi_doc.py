"""doc/openapi.yaml, read for the tests that hold the gateway to it."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import REPO

SPEC_PATH = REPO / "doc" / "openapi.yaml"


def spec() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return data
