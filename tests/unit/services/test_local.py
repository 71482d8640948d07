from __future__ import annotations

from pathlib import Path

import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.runtime import ServiceRuntime
from elastic_inference.core.settings import UpSettings, parse_settings
from elastic_inference.services.local import LocalSystem, check_inputs


def test_plan_starts_three_streams_three_workers_websocket_and_gateway(tmp_path: Path) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path)], {})
    system = LocalSystem(s, "redis://127.0.0.1:1/0", ServiceRuntime("t"))
    kinds = [c.args[0] for c in system.children]
    assert kinds.count("stream") == 3 and kinds.count("infer") == 3
    assert kinds[-2:] == ["websocket", "gateway"]
    assert {c.env["EI_REDIS_URL"] for c in system.children} == {"redis://127.0.0.1:1/0"}
    ports = [c.args[c.args.index("--metrics-port") + 1] for c in system.children]
    assert len(set(ports)) == len(ports)


def test_missing_samples_are_named(tmp_path: Path) -> None:
    s = parse_settings(UpSettings, ["--sample-dir", str(tmp_path)], {})
    with pytest.raises(ConfigError, match=r"vtest\.avi"):
        check_inputs(s)
