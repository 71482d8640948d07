"""Users and tokens in a real redis-server: passwords, tokens, revocation, nothing secret kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pytest
import redis
from argon2 import PasswordHasher

from elastic_inference.core import keys
from elastic_inference.core.auth import Principal, Role, User, token_digest
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.errors import AuthError

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def light_hasher() -> PasswordHasher:
    """argon2id with small costs: the same code path, quicker on a loaded machine."""
    return PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


class CountingHasher(PasswordHasher):
    """The real hasher, counting verifications (to see the unknown-user path do one)."""

    verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[AuthStore]:
    yield AuthStore(redis_client, light_hasher())


def test_a_user_logs_in_with_its_password_only(store: AuthStore) -> None:
    added = store.add_user("alice", Role.OPERATOR, PASSWORD, now=1000.0)
    assert added == User("alice", Role.OPERATOR, 1000.0)
    assert store.authenticate_password("alice", PASSWORD) == added
    assert store.authenticate_password("alice", PASSWORD + "!") is None
    assert store.authenticate_password("alice", "") is None
    assert store.authenticate_password("bob", PASSWORD) is None
    assert store.users() == [added]


def test_adding_an_existing_user_changes_nothing(store: AuthStore) -> None:
    store.add_user("alice", Role.VIEWER, PASSWORD)
    with pytest.raises(AuthError, match="exists already"):
        store.add_user("alice", Role.ADMIN, "another password 123")
    assert store.authenticate_password("alice", PASSWORD) is not None
    assert store.authenticate_password("alice", "another password 123") is None
    assert [u.role for u in store.users()] == [Role.VIEWER]


def test_invalid_users_are_refused_before_anything_is_stored(
        store: AuthStore, redis_client: redis.Redis) -> None:
    with pytest.raises(AuthError, match="too short"):
        store.add_user("alice", Role.ADMIN, "short")
    with pytest.raises(AuthError, match="invalid user name"):
        store.add_user("Alice", Role.ADMIN, PASSWORD)
    assert redis_client.dbsize() == 0


def test_an_unknown_or_invalid_user_costs_one_verification_too(redis_client: redis.Redis) -> None:
    hasher = CountingHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    store = AuthStore(redis_client, hasher)
    store.add_user("alice", Role.VIEWER, PASSWORD)
    for name in ("alice", "nobody", "Not/A:Name", "x" * 500):
        before = hasher.verified
        assert store.authenticate_password(name, "wrong password here") is None
        assert hasher.verified == before + 1, name


def test_a_weaker_hash_is_replaced_at_the_next_login(redis_client: redis.Redis) -> None:
    AuthStore(redis_client, light_hasher()).add_user("alice", Role.ADMIN, PASSWORD)
    old = redis_client.hget(keys.auth_user("alice"), "hash")
    stronger = PasswordHasher(time_cost=2, memory_cost=16 * 1024, parallelism=1)
    store = AuthStore(redis_client, stronger)
    assert store.authenticate_password("alice", PASSWORD + "x") is None
    assert redis_client.hget(keys.auth_user("alice"), "hash") == old  # wrong password: kept
    assert store.authenticate_password("alice", PASSWORD) is not None
    new = redis_client.hget(keys.auth_user("alice"), "hash")
    assert new != old and b"m=16384,t=2,p=1" in new
    assert store.authenticate_password("alice", PASSWORD) is not None


def test_a_removed_user_cannot_log_in_and_its_tokens_stay(store: AuthStore) -> None:
    store.add_user("alice", Role.ADMIN, PASSWORD)
    new = store.create_token(Role.VIEWER, "alice-laptop")
    store.remove_user("alice")
    assert store.authenticate_password("alice", PASSWORD) is None
    assert store.users() == []
    with pytest.raises(AuthError, match="no user named 'alice'"):
        store.remove_user("alice")
    assert store.authenticate_token(new.token) == Principal("token", "alice-laptop", Role.VIEWER)


def test_a_token_works_until_it_is_revoked(store: AuthStore) -> None:
    new = store.create_token(Role.OPERATOR, "ci", now=1000.0)
    assert new.info.name == "ci" and new.info.role is Role.OPERATOR
    assert store.authenticate_token(new.token) == Principal("token", "ci", Role.OPERATOR)
    assert store.authenticate_token(new.token[:-1] + ("A" if new.token[-1] != "A" else "B")) \
        is None
    assert store.authenticate_token("not a token") is None
    store.revoke_token("ci")
    assert store.authenticate_token(new.token) is None
    assert store.tokens() == []
    with pytest.raises(AuthError, match="no token named 'ci'"):
        store.revoke_token("ci")


def test_token_names_are_unique_or_generated(store: AuthStore) -> None:
    store.create_token(Role.VIEWER, "ci")
    with pytest.raises(AuthError, match="exists already"):
        store.create_token(Role.ADMIN, "ci")
    generated = {store.create_token(Role.VIEWER).info.name for _ in range(5)}
    assert len(generated) == 5 and all(n.startswith("token-") for n in generated)
    assert {t.name for t in store.tokens()} == generated | {"ci"}
    assert [t.role for t in store.tokens() if t.name == "ci"] == [Role.VIEWER]


def test_last_used_is_recorded_at_most_once_a_minute(store: AuthStore) -> None:
    new = store.create_token(Role.VIEWER, "ci", now=1000.0)
    assert store.tokens()[0].last_used is None
    store.authenticate_token(new.token, now=2000.0)
    store.authenticate_token(new.token, now=2030.0)
    assert store.tokens()[0].last_used == 2000.0
    store.authenticate_token(new.token, now=2061.0)
    assert store.tokens()[0].last_used == 2061.0


def test_only_a_listed_token_works(store: AuthStore, redis_client: redis.Redis) -> None:
    """A token record without its name in the index (a damaged or half-written store) is
    refused: every token that works is one ``ei auth list`` shows."""
    new = store.create_token(Role.ADMIN, "ci")
    redis_client.hdel(keys.auth_tokens(), "ci")
    assert store.authenticate_token(new.token) is None
    redis_client.hset(keys.auth_tokens(), "ci", "0" * 64)
    assert store.authenticate_token(new.token) is None


def test_a_damaged_role_grants_nothing(store: AuthStore, redis_client: redis.Redis) -> None:
    store.add_user("alice", Role.VIEWER, PASSWORD)
    new = store.create_token(Role.VIEWER, "ci")
    redis_client.hset(keys.auth_user("alice"), "role", "root")
    redis_client.hset(keys.auth_token(token_digest(new.token)), "role", "root")
    assert store.authenticate_password("alice", PASSWORD) is None
    assert store.authenticate_token(new.token) is None
    assert store.users() == [] and store.tokens() == []


def test_redis_holds_no_password_and_no_token(redis_client: redis.Redis) -> None:
    """Every key, dumped uncompressed and read field by field, holds neither the password nor
    the token nor the token's random part: only the argon2id hash and the SHA-256 digest."""
    store = AuthStore(redis_client)  # the default parameters, as deployed
    store.add_user("alice", Role.ADMIN, PASSWORD)
    new = store.create_token(Role.ADMIN, "ci")
    store.authenticate_password("alice", PASSWORD)
    store.authenticate_token(new.token)
    secrets = [PASSWORD.encode(), new.token.encode(), new.token[3:].encode()]
    previous = redis_client.config_get("rdbcompression")["rdbcompression"]
    redis_client.config_set("rdbcompression", "no")
    try:
        names = sorted(redis_client.scan_iter("*"))
        assert {n.decode() for n in names} == {
            keys.auth_users(), keys.auth_user("alice"), keys.auth_tokens(),
            keys.auth_token(token_digest(new.token))}
        for name in names:
            dumped = redis_client.dump(name)
            kind = redis_client.type(name)
            values = (redis_client.hgetall(name) if kind == b"hash"
                      else {m: b"" for m in redis_client.smembers(name)})
            text = dumped + b"".join(k + v for k, v in values.items())
            assert not [s for s in secrets if s in text], name
    finally:
        redis_client.config_set("rdbcompression", previous)
    stored = redis_client.hget(keys.auth_user("alice"), "hash")
    assert stored.startswith(b"$argon2id$v=19$m=65536,t=3,p=4$")
    assert redis_client.hget(keys.auth_tokens(), "ci") == token_digest(new.token).encode()
