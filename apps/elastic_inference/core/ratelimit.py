"""Rate limits shared by every gateway replica: GCRA (a token bucket kept as one timestamp).

A :class:`Rate` of ``N/min`` lets a client make N requests at once, then one every
``60/N`` seconds; an idle client earns its burst back at that pace. Each client of each
limit is one Redis STRING (``keys.rate_limit``): its theoretical arrival time, with a TTL
equal to how long it takes to drain, so an idle client leaves nothing behind. The check and
the update are one Lua script, so replicas sharing Redis share the limit and never race.

Generic on purpose: the gateway limits analysis-job creation and listing by client today;
failed logins use the same limiter with buckets of their own (core.access).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from redis.commands.core import Script

from . import keys
from .redisconn import RedisClient

#: Seconds in each unit a rate may be written with.
UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE_RE = re.compile(r"^\s*(\d{1,7})\s*/\s*([a-z]+)\s*$")
OFF = ("0", "off")

#: KEYS[1] the client's rate key (a STRING: its theoretical arrival time, ms).
#: ARGV[1] now in ms, or "" for the Redis server's own clock (one clock for every replica);
#: ARGV[2] emission interval in ms (period / count); ARGV[3] the period in ms (burst window).
#: Returns {1, 0} when allowed (the arrival is recorded), {0, ms to wait} when refused
#: (nothing is written: a refused request costs the client nothing more).
_ALLOW_LUA = """
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local excess = new_tat - now - period
if excess > 0 then return {0, math.ceil(excess)} end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
return {1, 0}
"""


#: KEYS[1] the client's rate key; ARGV[1] emission interval in ms. Gives one request back
#: (the arrival time one interval earlier; the key goes once nothing is owed). Returns 1 if
#: anything was owed, else 0.
_REFUND_LUA = """
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local new_tat = tat - tonumber(ARGV[1])
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
end
return 1
"""


@dataclass(frozen=True)
class Rate:
    """``count`` requests per ``period`` seconds, all of them at once if need be."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """``"100/min"``, ``"5/s"``, ``"1000/h"``; ``"0"`` or ``"off"``: no limit (None).
        Raises ValueError naming what is wrong (the text is a setting, never a secret)."""
        raw = text.strip().lower()
        if raw in OFF:
            return None
        match = _RATE_RE.fullmatch(raw)
        if match is None or match.group(2) not in UNITS:
            raise ValueError(f"invalid rate {text!r}: write COUNT/UNIT with a unit of "
                              f"{'/'.join(sorted(set(UNITS)))} (e.g. 100/min), or off")
        count = int(match.group(1))
        if count == 0:
            return None
        return cls(count, UNITS[match.group(2)])

    @property
    def interval(self) -> float:
        """Seconds between two requests once the burst is spent."""
        return self.period / self.count

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.period:g}s"


class Verdict(NamedTuple):
    """Whether a request may go ahead; if not, how many seconds until one may."""

    allowed: bool
    retry_after: float

    @property
    def retry_after_header(self) -> str:
        """``Retry-After``: whole seconds, at least 1 (RFC 9110 allows no fraction)."""
        return str(max(1, math.ceil(self.retry_after)))


ALLOWED = Verdict(True, 0.0)


class RateLimiter:
    """One named limit (``bucket``) at one :class:`Rate`, per client (``who``)."""

    def __init__(self, client: RedisClient, bucket: str, rate: Rate | None) -> None:
        keys.check_type(bucket)
        self.client = client
        self.bucket = bucket
        self.rate = rate
        self._allow: Script | None = None  # registered at first use, in the caller's thread
        self._refund: Script | None = None

    def allow(self, who: str, now: float | None = None) -> Verdict:
        """Count one request of ``who`` if the rate allows it (sync, one round trip).

        ``now`` (epoch seconds) is for tests; by default the Redis server's clock decides,
        so replicas with drifting clocks still share one limit. Redis errors propagate: the
        caller decides what an outage means (the gateway answers 503).
        """
        if self.rate is None:
            return ALLOWED
        if self._allow is None:
            self._allow = self.client.register_script(_ALLOW_LUA)
        arg_now = "" if now is None else f"{now * 1000.0:.3f}"
        allowed, wait_ms = self._allow(
            keys=[keys.rate_limit(self.bucket, who)],
            args=[arg_now, f"{self.rate.interval * 1000.0:.3f}",
                  f"{self.rate.period * 1000.0:.3f}"])
        return ALLOWED if int(allowed) else Verdict(False, int(wait_ms) / 1000.0)

    def refund(self, who: str) -> None:
        """Give back one request ``allow`` counted: a login that succeeded is no failure."""
        if self.rate is None:
            return
        if self._refund is None:
            self._refund = self.client.register_script(_REFUND_LUA)
        self._refund(keys=[keys.rate_limit(self.bucket, who)],
                     args=[f"{self.rate.interval * 1000.0:.3f}"])

    def reset(self, who: str) -> None:
        """Forget ``who``'s history (a successful login will clear its failures)."""
        self.client.delete(keys.rate_limit(self.bucket, who))
