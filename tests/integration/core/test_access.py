"""Sessions, signed values and password logins on a real redis-server (core.sessions,
core.access): what the gateway and the websocket service rely on, without HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from argon2 import PasswordHasher

from elastic_inference.core import keys
from elastic_inference.core.access import ANONYMOUS, Credentials, Gatekeeper, LoginThrottled
from elastic_inference.core.auth import Role
from elastic_inference.core.authstore import AuthStore
from elastic_inference.core.errors import ConfigError
from elastic_inference.core.ratelimit import Rate
from elastic_inference.core.sessions import SessionStore, Signer, UrlSigner, csrf_matches

pytestmark = pytest.mark.integration

SECRET = "k" * 40
PASSWORD = "correct horse battery staple"


@pytest.fixture
def gate(redis_client: redis.Redis) -> Iterator[Gatekeeper]:
    store = AuthStore(redis_client, PasswordHasher(time_cost=1, memory_cost=8 * 1024,
                                                   parallelism=1))
    store.add_user("ada", Role.OPERATOR, PASSWORD)
    store.add_user("bob", Role.VIEWER, PASSWORD)
    yield Gatekeeper(redis_client, Signer(SECRET), store=store, login_rate=Rate(3, 60.0))


def cookie_of(gate: Gatekeeper, name: str, client: str = "10.0.0.1") -> str:
    new = gate.login(name, PASSWORD, client, ttl=60)
    assert new is not None
    return new.cookie


def test_a_session_is_found_until_it_ends_expires_or_its_user_goes(
        gate: Gatekeeper, redis_client: redis.Redis) -> None:
    cookie = cookie_of(gate, "ada")
    access = gate.identify(Credentials(cookie=cookie))
    assert access.principal is not None and access.principal.role is Role.OPERATOR
    assert access.session is not None and csrf_matches(access.session, access.session.csrf)
    assert not csrf_matches(access.session, None) and not csrf_matches(access.session, "x")
    # Nothing in Redis lets anyone in: the id is stored as its digest only.
    sid = cookie.split(".")[1]
    assert not any(sid.encode() in redis_client.dump(k) for k in redis_client.keys("*"))
    # The role is the user's current one.
    redis_client.hset(keys.auth_user("ada"), "role", "admin")
    access = gate.identify(Credentials(cookie=cookie))
    assert access.principal is not None and access.principal.role is Role.ADMIN
    assert gate.sessions is not None and access.session is not None
    gate.sessions.end(access.session)
    assert gate.identify(Credentials(cookie=cookie)).principal is None
    short = SessionStore(redis_client, Signer(SECRET)).create("bob", Role.VIEWER, ttl=1)
    assert gate.identify(Credentials(cookie=short.cookie)).principal is not None
    time.sleep(1.2)
    assert gate.identify(Credentials(cookie=short.cookie)).principal is None
    bob = cookie_of(gate, "bob")
    gate.store.remove_user("bob")
    assert redis_client.exists(keys.auth_user_sessions("bob")) == 0
    gate.store.add_user("bob", Role.ADMIN, PASSWORD)  # a new bob inherits nothing
    assert gate.identify(Credentials(cookie=bob)).principal is None


def test_signatures_are_bound_to_their_purpose_and_secret(gate: Gatekeeper) -> None:
    cookie = cookie_of(gate, "ada")
    other = Gatekeeper(gate.store.client, Signer("z" * 40), store=gate.store)
    assert other.identify(Credentials(cookie=cookie)).principal is None  # another secret
    urls = UrlSigner(Signer(SECRET))
    url, expires = urls.sign("/api/streams/cam1/mjpeg", 60)
    exp, sig = (part.split("=", 1)[1] for part in url.split("?", 1)[1].split("&"))
    assert int(exp) == expires
    good = Credentials(path="/api/streams/cam1/mjpeg", exp=exp, sig=sig)
    assert gate.identify(good).principal is not None
    for bad in (Credentials(path="/api/streams/cam2/mjpeg", exp=exp, sig=sig),
                Credentials(path=good.path, exp=str(expires + 60), sig=sig),
                # The first character changed (the last one's low bits are padding, and the
                # one put there could be the one it had).
                Credentials(path=good.path, exp=exp, sig=("B" if sig[0] == "A" else "A") + sig[1:]),
                Credentials(path=good.path, exp=exp), Credentials(path=good.path, sig=sig)):
        assert gate.identify(bad).principal is None, bad
    # A URL's MAC is not a cookie's, though both come from one secret.
    user, sid, cookie_exp, _ = cookie.split(".")
    mac = Signer(SECRET).mac("url", user, sid, cookie_exp)
    assert gate.identify(Credentials(cookie=f"{user}.{sid}.{cookie_exp}.{mac}")).principal \
        is None
    with pytest.raises(ConfigError, match="EI_SESSION_SECRET"):
        Signer("short")


def test_credentials_of_every_shape(gate: Gatekeeper) -> None:
    token = gate.store.create_token(Role.VIEWER).token
    found = gate.identify(Credentials(authorization=f"Bearer {token}"))
    assert found.principal is not None and found.principal.kind == "token"
    assert gate.identify(Credentials(authorization=f"bearer   {token} ")).principal is not None
    for header in ("", "Bearer", f"Token {token}", f"Bearer {token}x", "Bearer ei_",
                   f"Basic {token}"):
        refused = gate.identify(Credentials(authorization=header))
        assert refused.principal is None and refused.reason, header
    for cookie in ("", "junk", "a.b.c.d", "ada." + "A" * 43 + ".99999999999.x",
                   f"ADA.{'A' * 43}.1.{'A' * 43}"):
        assert gate.identify(Credentials(cookie=cookie)).principal is None, cookie
    assert gate.identify(Credentials()).reason.startswith("authentication required")
    off = Gatekeeper(gate.store.client, None, enabled=False)
    assert off.identify(Credentials()).principal == ANONYMOUS


def test_failed_logins_are_throttled_per_address_and_per_user(gate: Gatekeeper) -> None:
    for _ in range(6):  # successes cost an address nothing
        cookie_of(gate, "ada", "10.0.0.1")
    for name in ("eve", "mallory", "trent"):  # three failures from one address, any users
        assert gate.login(name, "wrong password!", "10.0.0.2", 60) is None
    with pytest.raises(LoginThrottled) as throttled:
        gate.login("ada", PASSWORD, "10.0.0.2", 60)  # not even checked
    assert throttled.value.verdict.retry_after > 0
    assert cookie_of(gate, "ada", "10.0.0.3")  # another address: fine
    for client in ("10.0.1.1", "10.0.1.2", "10.0.1.3"):  # one user from many addresses
        assert gate.login("bob", "wrong password!", client, 60) is None
    with pytest.raises(LoginThrottled):
        gate.login("bob", PASSWORD, "10.0.1.4", 60)
    assert gate.login("ada", PASSWORD, "10.0.1.5", 60) is not None  # other users unaffected
