from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.options import describe
from elastic_inference.core.settings import (
    EventSettings,
    InferSettings,
    ServiceSettings,
    StreamSettings,
    UpSettings,
    known_env_names,
    parse_settings,
)


def test_defaults_without_environment() -> None:
    s = parse_settings(InferSettings, [], {})
    assert (s.type, s.device, s.batch, s.max_age) == ("people", "CPU", 8, 1.0)
    assert s.model_dir == Path("models")


def test_flag_beats_environment_beats_default() -> None:
    s = parse_settings(InferSettings, ["--batch", "3"], {"EI_BATCH": "5", "EI_TYPE": "face"})
    assert s.batch == 3 and s.type == "face"


def test_device_is_case_insensitive() -> None:
    assert parse_settings(InferSettings, [], {"EI_DEVICE": "gpu"}).device == "GPU"


@pytest.mark.parametrize("env,name", [
    ({"EI_BATCH": "many"}, "EI_BATCH"),
    ({"EI_BATCH": "0"}, "EI_BATCH"),
    ({"EI_DEVICE": "TPU"}, "EI_DEVICE"),
    ({"EI_MAX_AGE": "-1"}, "EI_MAX_AGE"),
    ({"EI_TYPE": "Bad Type"}, "EI_TYPE"),
    ({"EI_REDIS_URL": "http://x"}, "EI_REDIS_URL"),
    ({"EI_TYPO": "1"}, "EI_TYPO"),
])
def test_invalid_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        parse_settings(InferSettings, [], env)


def test_invalid_flag_is_named() -> None:
    with pytest.raises(ConfigError, match="--jpeg-quality"):
        parse_settings(StreamSettings, ["--jpeg-quality", "101"], {})


def test_lists_and_booleans() -> None:
    s = parse_settings(StreamSettings, [], {"EI_TYPES": "face, people", "EI_LOOP": "no"})
    assert s.types == ("face", "people") and s.loop is False
    # A bare boolean flag means true; an explicit value and the flag-over-env order still hold.
    assert parse_settings(StreamSettings, ["--loop"], {"EI_LOOP": "no"}).loop is True
    assert parse_settings(StreamSettings, ["--loop", "off"], {}).loop is False
    with pytest.raises(ConfigError, match="--loop"):
        parse_settings(StreamSettings, ["--loop", "maybe"], {})


def test_variables_of_other_services_are_known() -> None:
    # One ConfigMap may carry every service's settings: none of them is "unknown".
    s = parse_settings(StreamSettings, [], {"EI_MODEL": "blazeface", "EI_PORT": "9000"})
    assert s.types == ("people",)
    assert {"EI_MODEL", "EI_SOURCE", "EI_REDIS_URL", "EI_WS_PORT"} <= known_env_names()


def test_up_defaults_to_embedded_redis() -> None:
    assert parse_settings(UpSettings, [], {}).redis_url == ""


def test_describe_lists_every_option() -> None:
    rows = describe(InferSettings)
    assert ("EI_DEVICE", "--device", "'CPU'") == rows[[r[0] for r in rows].index("EI_DEVICE")][:3]


@dataclass(frozen=True)
class WithEvents(ServiceSettings, EventSettings):
    """What ``ei track``'s settings will be: a service with the event settings mixed in."""


def test_event_settings_parse_and_never_show_their_secrets() -> None:
    env = {"EI_WEBHOOK_SECRET": "s" * 32, "EI_MQTT_URL": "mqtt://track:hunter2hunter2@mq:1883",
           "EI_EVENT_RETENTION": "86400", "EI_SOURCE_ALLOW": "hooks.example.com"}
    s = parse_settings(WithEvents, [], env)
    assert (s.event_retention, s.webhook_tries, s.sink_queue) == (86400.0, 3, 1000)
    assert s.event_snapshots == 2000
    assert parse_settings(WithEvents, [], {"EI_EVENT_SNAPSHOTS": "50"}).event_snapshots == 50
    assert s.source_policy().names == frozenset({"hooks.example.com"})
    for bad, name in [({"EI_WEBHOOK_SECRET": "hunter2-short"}, "EI_WEBHOOK_SECRET"),
                      ({"EI_MQTT_URL": "http://track:hunter2-url@mq"}, "EI_MQTT_URL"),
                      ({"EI_MQTT_URL": "mqtt://track:hunter2-url@mq/path"}, "EI_MQTT_URL"),
                      ({"EI_WEBHOOK_TRIES": "0"}, "EI_WEBHOOK_TRIES"),
                      ({"EI_EVENT_SNAPSHOTS": "0"}, "EI_EVENT_SNAPSHOTS")]:
        with pytest.raises(ConfigError, match=name) as err:
            parse_settings(WithEvents, [], bad)
        assert "hunter2" not in str(err.value)
    with pytest.raises(SystemExit):  # secrets have no flag: ps would show them
        parse_settings(WithEvents, ["--webhook-secret", "s" * 32], {})
    assert {"EI_WEBHOOK_SECRET", "EI_MQTT_URL", "EI_EVENT_RETENTION"} <= known_env_names()


@pytest.mark.parametrize(("argv", "env", "named"), [
    (["--pool"], {"EI_SOURCE": "cam.avi"}, "EI_SOURCE"),
    (["--pool", "--stream-id", "cam"], {}, "--stream-id"),
    ([], {"EI_POOL": "yes", "EI_MAX_WIDTH": "1280"}, "EI_MAX_WIDTH"),  # even the default value
    ([], {"EI_POOL": "1", "EI_FPS": "5"}, "EI_FPS"),
])
def test_the_pool_refuses_the_single_sources_own_options(argv: list[str], env: dict[str, str],
                                                          named: str) -> None:
    with pytest.raises(ConfigError, match=f"^{named} is not used with EI_POOL"):
        parse_settings(StreamSettings, argv, env)


def test_the_pool_options_and_the_single_mode() -> None:
    pool = parse_settings(StreamSettings, ["--pool", "--max-sources", "3"],
                          {"EI_LEASE_SECONDS": "2", "EI_MEDIA_DIR": "/media",
                           "EI_SOURCE_ALLOW": "cams.example.com", "EI_JPEG_QUALITY": "70"})
    assert (pool.pool, pool.max_sources, pool.lease_seconds, str(pool.media_dir)) == \
        (True, 3, 2.0, "/media")
    assert pool.source_policy().names == {"cams.example.com"}
    single = parse_settings(StreamSettings, [], {"EI_SOURCE": "cam.avi", "EI_TYPES": "face"})
    assert not single.pool and single.types == ("face",)
    with pytest.raises(ConfigError, match="EI_LEASE_SECONDS"):
        parse_settings(StreamSettings, ["--pool"], {"EI_LEASE_SECONDS": "1.5"})


def test_a_url_sources_timeout_is_bounded_and_given_in_milliseconds() -> None:
    assert parse_settings(StreamSettings, [], {"EI_SOURCE": "cam.avi"}).capture_timeout_ms() \
        == 5000
    given = parse_settings(StreamSettings, ["--pool"], {"EI_SOURCE_TIMEOUT": "2.5"})
    assert given.capture_timeout_ms() == 2500  # both modes take it
    for bad in ("0.1", "61", "soon"):
        with pytest.raises(ConfigError, match="EI_SOURCE_TIMEOUT"):
            parse_settings(StreamSettings, [], {"EI_SOURCE": "cam.avi", "EI_SOURCE_TIMEOUT": bad})
