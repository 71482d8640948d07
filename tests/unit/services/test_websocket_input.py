"""Control messages that once ended a websocket connection with an internal error (1011)."""

from __future__ import annotations

import pytest

from elastic_inference.core.errors import SubscribeError
from elastic_inference.core.live import parse_subscribe


@pytest.mark.parametrize("text", ["[" * 60000, '{"subscribe": ' + "[" * 60000])
def test_deeply_nested_json_is_a_subscribe_error(text: str) -> None:
    with pytest.raises(SubscribeError, match="not valid JSON"):
        parse_subscribe(text)


def test_lone_surrogates_are_refused_as_stream_ids() -> None:
    with pytest.raises(SubscribeError, match="invalid stream id"):
        parse_subscribe('{"subscribe": ["\\ud800"]}')
