"""Options declared as dataclass fields, read from flags and ``EI_*`` variables.

The mechanism behind :mod:`.settings` (which holds the services' settings classes): ``opt``
declares a field, :func:`parse_options` fills a dataclass from ``argv`` and the environment.
Precedence: flag, then environment, then default. An unknown ``EI_*`` variable or an invalid
value raises :class:`ConfigError` naming the variable or flag, never echoing a secret.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from .errors import ConfigError
from .redact import redact_url

ENV_PREFIX = "EI_"

T = TypeVar("T")


def opt(default: Any, help: str, *, choices: Sequence[str] = (),
        check: Callable[[Any], str] | None = None,
        env: str | None = None, secret: bool = False, env_only: bool = False) -> Any:
    """Declare one option; ``check`` returns an error text or ``""``. The value of a
    ``secret`` option is never shown in an error; others are shown redacted (core.redact).
    An ``env_only`` option has no flag: a secret on the command line would show in ``ps``."""
    meta = {"help": help, "choices": tuple(choices), "check": check, "env": env,
            "secret": secret, "env_only": env_only}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return field(default=default, metadata=meta)


def env_name(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("env") or ENV_PREFIX + f.name.upper()


def _base_type(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0]
    return hint


def _shown(where: str, raw: str, secret: bool) -> str:
    """``VAR='value'`` for an error message: redacted, or only the name for a secret."""
    return where if secret else f"{where}={redact_url(raw)!r}"


def _convert(raw: str, hint: Any, name: str) -> Any:
    base = _base_type(hint)
    try:
        if base is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if base is int:
            return int(raw)
        if base is float:
            return float(raw)
        if base is Path:
            return Path(raw)
        if get_origin(base) is tuple:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw
    except ValueError as exc:
        raise ConfigError(f"{name} is invalid: {exc}") from exc


def parse_options(cls: type[T], known: Collection[str], argv: Sequence[str] | None = None,
                  environ: Mapping[str, str] | None = None, prog: str | None = None) -> T:
    """Build the dataclass ``cls`` from ``argv`` flags and ``environ``; ``known`` are the
    ``EI_*`` names any service understands (others are refused). Raises ConfigError.

    A class with a ``check_given(given)`` method has it called with the options given (field
    name -> the flag or variable that gave it), for rules about what may be set together."""
    environ = os.environ if environ is None else environ
    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ConfigError(f"unknown environment variable(s) {', '.join(unknown)}; "
                          "see doc/configuration.md")
    hints = get_type_hints(cls)
    parser = argparse.ArgumentParser(prog=prog, description=cls.__doc__)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    for f in fields:
        if f.metadata.get("env_only"):
            continue
        # A bare boolean flag (``--quick``) means true; ``--quick false`` still works.
        extra: dict[str, Any] = (
            {"nargs": "?", "const": "true"} if _base_type(hints[f.name]) is bool else {})
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                            metavar=env_name(f), **extra,
                            help=f"{f.metadata.get('help', '')} (default: {f.default!r})")
    args = parser.parse_args(list(argv) if argv is not None else [])
    values: dict[str, Any] = {}
    given: dict[str, str] = {}
    for f in fields:
        flag = getattr(args, f.name, None)
        var = env_name(f)
        if flag is not None:
            where, raw = "--" + f.name.replace("_", "-"), flag
        elif var in environ:
            where, raw = var, environ[var]
        else:
            values[f.name] = f.default
            continue
        shown = _shown(where, raw, bool(f.metadata.get("secret")))
        value = _convert(raw, hints[f.name], shown)
        choices = f.metadata.get("choices") or ()
        if choices:
            value = value.upper() if all(c.isupper() for c in choices) else value
            if value not in choices:
                raise ConfigError(f"{shown} is invalid: choose one of {', '.join(choices)}")
        check = f.metadata.get("check")
        problem = check(value) if check else ""
        if problem:
            raise ConfigError(f"{shown} is invalid: {problem}")
        values[f.name] = value
        given[f.name] = where
    built = cls(**values)
    check_given = getattr(built, "check_given", None)
    if callable(check_given):
        check_given(given)
    return built


def describe(cls: type[Any]) -> list[tuple[str, str, str, str]]:
    """``(variable, flag, default, help)`` rows for documentation and ``--help`` tables."""
    return [(env_name(f), "" if f.metadata.get("env_only") else "--" + f.name.replace("_", "-"),
             repr(f.default),
             str(f.metadata.get("help", ""))) for f in dataclasses.fields(cls)]
