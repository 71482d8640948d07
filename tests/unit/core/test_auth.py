"""The pure parts of users and tokens: role order, name and password rules, token shape."""

from __future__ import annotations

import dataclasses

import pytest

from elastic_inference.core import keys
from elastic_inference.core.auth import (
    MIN_PASSWORD,
    NewToken,
    Principal,
    Role,
    TokenInfo,
    User,
    check_name,
    check_password,
    looks_like_token,
    new_token,
    token_digest,
)
from elastic_inference.core.errors import AuthError, InvalidMessage


def test_roles_are_ordered_viewer_operator_admin() -> None:
    assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
    assert Role.ADMIN.allows(Role.VIEWER) and Role.ADMIN.allows(Role.ADMIN)
    assert Role.OPERATOR.allows(Role.VIEWER) and not Role.OPERATOR.allows(Role.ADMIN)
    assert not Role.VIEWER.allows(Role.OPERATOR)
    assert Principal("token", "ci", Role.OPERATOR).allows(Role.OPERATOR)
    assert not Principal("user", "ann", Role.VIEWER).allows(Role.ADMIN)


def test_role_names_parse_in_any_case_and_print_lower_case() -> None:
    assert Role.parse("Operator") is Role.OPERATOR
    assert [str(r) for r in Role] == ["viewer", "operator", "admin"]


@pytest.mark.parametrize("text", ["root", "", "admins", "1"])
def test_an_unknown_role_names_the_allowed_ones(text: str) -> None:
    with pytest.raises(AuthError, match="choose one of viewer, operator, admin"):
        Role.parse(text)


@pytest.mark.parametrize("name", ["alice", "ci-bot", "a", "x.y_z-1", "0ps", "a" * 64])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name
    assert keys.auth_user(name) == f"ei:{{auth}}:user:{name}"


@pytest.mark.parametrize("name", ["", "Alice", "-x", ".x", "a b", "a:b", "a/b", "é", "a" * 65,
                                  "a\n", "a*"])
def test_invalid_names_are_refused_by_the_rule_and_by_the_key(name: str) -> None:
    with pytest.raises(AuthError, match="lower-case letters"):
        check_name(name)
    with pytest.raises(InvalidMessage):
        keys.auth_user(name)


def test_passwords_need_twelve_characters_and_the_error_never_shows_them() -> None:
    assert check_password("x" * MIN_PASSWORD) == "x" * MIN_PASSWORD
    with pytest.raises(AuthError, match="at least 12") as short:
        check_password("Secret-1234")
    assert "Secret-1234" not in str(short.value)
    with pytest.raises(AuthError, match="too long"):
        check_password("y" * 1025)


def test_tokens_are_random_prefixed_and_stored_as_a_digest() -> None:
    made = {new_token() for _ in range(200)}
    assert len(made) == 200
    for token in made:
        assert token.startswith("ei_") and len(token) == 46 and looks_like_token(token)
        digest = token_digest(token)
        assert len(digest) == 64 and token not in digest
        assert keys.auth_token(digest) == f"ei:{{auth}}:token:{digest}"
    assert token_digest("ei_a") != token_digest("ei_b")


@pytest.mark.parametrize("token", ["", "ei_", "ei_short", "xx_" + "a" * 43, "ei_" + "a" * 42,
                                   "ei_" + "a" * 44, "ei_" + "a" * 42 + "/", " ei_" + "a" * 43])
def test_malformed_tokens_are_told_apart_before_any_lookup(token: str) -> None:
    assert not looks_like_token(token)


def test_a_token_digest_key_takes_only_a_digest() -> None:
    with pytest.raises(InvalidMessage):
        keys.auth_token("ei_" + "a" * 43)


def test_what_the_store_returns_holds_no_secret_but_the_new_token_once() -> None:
    for cls in (User, TokenInfo, Principal):
        names = {f.name for f in dataclasses.fields(cls)}
        assert not names & {"hash", "password", "token", "digest"}, cls
    new = NewToken(TokenInfo("ci", Role.VIEWER, 1.0), new_token())
    assert new.token not in repr(new)
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.info.role = Role.ADMIN  # type: ignore[misc]
