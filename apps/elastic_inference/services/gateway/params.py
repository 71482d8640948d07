"""Query and path parameters of the API, parsed and bounded (unit-tested without Redis)."""

from __future__ import annotations

import logging
import math
import re

from ...core.history import bucket_count
from ...core.text import has_control_characters

log = logging.getLogger(__name__)

# History queries (/results, /counts)
DEFAULT_RANGE_S = 300.0
MAX_RANGE_S = 24 * 3600.0
#: Epoch seconds beyond this are refused (year 5138): a Redis stream id must stay in range.
MAX_EPOCH_S = 1e11
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_LABEL_CHARS = 64
DEFAULT_STEP_S = 10.0
MIN_STEP_S, MAX_STEP_S = 1.0, 3600.0
MAX_BUCKETS = 1000
# MJPEG viewers' frame rate
DEFAULT_MJPEG_FPS = 10.0
MIN_MJPEG_FPS, MAX_MJPEG_FPS = 1.0, 30.0
FRAME_RE = re.compile(r"^(?:0|[1-9][0-9]{0,8})$")
#: What the integer and number parameters may look like: ASCII digits, no spaces or "_".
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")


class ParamError(ValueError):
    """An invalid query parameter; the message names it and is answered with 400."""


def parse_number(name: str, raw: str | None, default: float, low: float,
                 high: float) -> float:
    """A finite number in ``low..high``; ``default`` when absent or empty."""
    if raw is None or raw == "":
        return default
    value = float(raw) if _NUMBER.fullmatch(raw) else math.nan  # ASCII only, as parse_int
    if not math.isfinite(value):
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be a number")
    if not low <= value <= high:
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be between {low:g} and {high:g}")
    return value


def parse_range(since_raw: str | None, until_raw: str | None,
                now: float) -> tuple[float, float]:
    """``(since, until)`` in epoch seconds: until defaults to now, since to 5 minutes before
    it; since must not be after until and the range must not exceed 24 hours."""
    until = parse_number("until", until_raw, now, 0.0, MAX_EPOCH_S)
    since = parse_number("since", since_raw, max(0.0, until - DEFAULT_RANGE_S), 0.0,
                         MAX_EPOCH_S)
    if since > until:
        raise ParamError(f"invalid since {since:.3f}: it is after until {until:.3f}")
    if until - since > MAX_RANGE_S:
        raise ParamError(f"invalid since {since:.3f}: the range to until ({until - since:.0f} "
                         f"s) exceeds {MAX_RANGE_S:.0f} s (24 h)")
    return since, until


def parse_int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    """An integer in ``low..high``; ``default`` when absent or empty."""
    if raw is None or raw == "":
        return default
    # Not int() alone: it also takes other scripts' digits ("\u1095" is 5), spaces, "+" and
    # "_", which a client never means and a proxy or log may read otherwise.
    if not _INTEGER.fullmatch(raw):
        raise ParamError(f"invalid {name} {raw[:40]!r}: must be an integer")
    value = int(raw)
    if not low <= value <= high:
        raise ParamError(f"invalid {name} {value}: must be between {low} and {high}")
    return value


def parse_limit(raw: str | None) -> int:
    """How many results at most: an integer in 1..10000, default 1000."""
    return parse_int("limit", raw, DEFAULT_LIMIT, 1, MAX_LIMIT)


def parse_label(raw: str | None) -> str | None:
    """An optional detection label: at most 64 characters, none of them control characters."""
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_LABEL_CHARS:
        raise ParamError(f"invalid label: longer than {MAX_LABEL_CHARS} characters")
    if has_control_characters(raw):
        raise ParamError("invalid label: contains control characters")
    return raw


def parse_step(raw: str | None, since: float, until: float) -> float:
    """Bucket width in seconds: 1..3600, default 10, and at most 1000 buckets in the range."""
    step = parse_number("step", raw, DEFAULT_STEP_S, MIN_STEP_S, MAX_STEP_S)
    n = bucket_count(since, until, step)
    if n > MAX_BUCKETS:
        raise ParamError(f"invalid step {step:g}: {n} buckets over {until - since:.0f} s; at "
                         f"most {MAX_BUCKETS} (use a step of at least "
                         f"{math.ceil((until - since) / MAX_BUCKETS)} s)")
    return step


def parse_fps(raw: str | None) -> float:
    """MJPEG frame rate cap: 1..30 frames per second, default 10."""
    return parse_number("fps", raw, DEFAULT_MJPEG_FPS, MIN_MJPEG_FPS, MAX_MJPEG_FPS)


def parse_frame_number(raw: str) -> int:
    """A frame number from a path: 0, 1, 2, ... (decimal digits, no sign, below 10^9)."""
    if not FRAME_RE.fullmatch(raw):
        raise ParamError(f"invalid frame number {raw[:40]!r}: must be a whole number "
                         f"0, 1, 2, ...")
    return int(raw)
