"""RuleStore on a real Redis: replace, read back, version and time of each write, delete."""

from __future__ import annotations

import redis

from elastic_inference.core import keys
from elastic_inference.core.analytics.rules import Rule
from elastic_inference.core.rulestore import RuleStore, StoredRules

GATE = Rule("gate", "line", ((0.5, 0.0), (0.5, 1.0)), ("person",))
LOT = Rule("lot", "zone", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)), ())


def test_a_stream_without_rules_has_none(redis_client: redis.Redis) -> None:
    assert RuleStore(redis_client).get("cam1") == StoredRules((), 0, 0)


def test_each_put_replaces_the_rules_and_counts_a_version(redis_client: redis.Redis) -> None:
    store = RuleStore(redis_client)
    first = store.put("cam1", (GATE, LOT), now=1000.0)
    assert first == StoredRules((GATE, LOT), 1, 1_000_000)
    assert store.get("cam1") == first
    second = store.put("cam1", (LOT,), now=1001.5)
    assert second == StoredRules((LOT,), 2, 1_001_500)
    assert store.get("cam1") == second
    assert store.get("cam2") == StoredRules()  # other streams untouched


def test_delete_removes_the_key_and_a_new_put_changes_the_time(
        redis_client: redis.Redis) -> None:
    store = RuleStore(redis_client)
    store.put("cam1", (GATE,), now=1000.0)
    assert store.delete("cam1")
    assert not redis_client.exists(keys.rules("cam1"))
    assert not store.delete("cam1")
    again = store.put("cam1", (GATE,), now=1002.0)
    assert (again.version, again.updated_ms) == (1, 1_002_000)
