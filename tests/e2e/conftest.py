"""What the dashboard's browser tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.browser import Browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module; fails (never skips) without chromium or `make spa`,
    before any service starts."""
    b = Browser()
    yield b
    b.close()
