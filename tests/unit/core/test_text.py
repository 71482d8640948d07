"""core.text: the control-character check every name from the network passes."""

from __future__ import annotations

import pytest

from elastic_inference.core.text import has_control_characters


@pytest.mark.parametrize("text", ["a\x00b", "line\n", "tab\tin", "del\x7f", "c1\x85", "\x9b"])
def test_c0_del_and_c1_controls_are_found(text: str) -> None:
    assert has_control_characters(text)


@pytest.mark.parametrize("text", ["", "cam-1", "Café ☕", "rtsp://h/x?a=b&c=d", "\u00a0nbsp"])
def test_printable_text_has_none(text: str) -> None:
    assert not has_control_characters(text)
