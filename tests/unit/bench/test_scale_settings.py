"""``ei bench --scale``'s options: parsed once, a bad value refused naming its variable."""

from __future__ import annotations

import pytest

from elastic_inference.core.errors import ConfigError
from elastic_inference.core.settings import BenchSettings, parse_settings


def test_scale_options_parse() -> None:
    s = parse_settings(BenchSettings, ["--scale", "--scale-sources", "12", "--scale-size",
                                       "640x360"], environ={})
    assert s.scale and s.scale_sources == 12 and s.scale_wh == (640, 360)
    assert parse_settings(BenchSettings, [], environ={}).scale_wh == (320, 180)


@pytest.mark.parametrize(("env", "value"), [("EI_SCALE_SIZE", "320"),
                                            ("EI_SCALE_SIZE", "8x8"),
                                            ("EI_SCALE_SOURCES", "0"),
                                            ("EI_SCALE_TYPE", "no type!")])
def test_bad_scale_option_names_its_variable(env: str, value: str) -> None:
    with pytest.raises(ConfigError, match=env):
        parse_settings(BenchSettings, [], environ={env: value})
