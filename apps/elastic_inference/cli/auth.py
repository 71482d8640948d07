"""``ei auth``: add and remove users, create and revoke API tokens, list both.

A password never comes from the command line, where every user of the machine can read it
(``ps``) and shells keep it in their history: it is asked twice on the terminal, or read from
the first line of ``--password-file FILE`` (``-``: one line of stdin). A new token is printed
once, alone on the last line of stdout, so ``TOKEN=$(ei auth token create ...)`` captures it.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import sys
import time
from pathlib import Path

from ..core.auth import Role
from ..core.authstore import AuthStore, migrate_legacy_keys
from ..core.errors import AuthError, ConfigError
from ..core.options import env_name
from ..core.redisconn import connect
from ..core.settings import AuthSettings, parse_settings
from .table import table

_SETTINGS = dataclasses.fields(AuthSettings)


def _flag(f: dataclasses.Field[object]) -> str:
    return "--" + f.name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    """The command's parser. No abbreviations: ``--password`` must not mean
    ``--password-file``, and a value given to an unknown option must not become a name."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for f in _SETTINGS:
        common.add_argument(_flag(f), dest=f"setting_{f.name}", metavar=env_name(f),
                            help=f"{f.metadata.get('help', '')} (default: {f.default!r})")
    role_help = f"one of {', '.join(str(r) for r in Role)}"

    def sub(group: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
            text: str) -> argparse.ArgumentParser:
        return group.add_parser(name, help=text, description=text, parents=[common],
                                allow_abbrev=False)

    parser = argparse.ArgumentParser(prog="ei auth", description=__doc__, allow_abbrev=False)
    kinds = parser.add_subparsers(dest="kind", required=True)
    user = kinds.add_parser("user", help="add or remove a user", allow_abbrev=False)
    user_actions = user.add_subparsers(dest="action", required=True)
    add = sub(user_actions, "add", "add a user (password asked twice, or --password-file)")
    add.add_argument("name", help="user name: lower-case letters, digits, '.', '_', '-'")
    add.add_argument("--role", required=True, help=role_help)
    add.add_argument("--password-file", metavar="FILE",
                     help="read the password from the first line of FILE ('-': from stdin)")
    remove = sub(user_actions, "remove", "remove a user (tokens are not users' and stay)")
    remove.add_argument("name")
    token = kinds.add_parser("token", help="create or revoke an API token", allow_abbrev=False)
    token_actions = token.add_subparsers(dest="action", required=True)
    create = sub(token_actions, "create", "create a token; printed once, on the last line")
    create.add_argument("--role", required=True, help=role_help)
    create.add_argument("--name", help="its name, unique among tokens (default: token-XXXXXXXX)")
    revoke = sub(token_actions, "revoke", "revoke a token by its name (as ei auth list shows)")
    revoke.add_argument("name")
    sub(kinds, "list", "users and tokens: name, role, created, last used (no secrets)")
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, AuthSettings]:
    """The action's arguments and the settings. Anything unknown is refused naming only the
    option, never a value (it might be a password typed where it does not belong)."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        options = sorted({u.split("=", 1)[0] for u in unknown if u.startswith("-")})
        others = sum(1 for u in unknown if not u.startswith("-"))
        parts = ([f"unknown option(s) {', '.join(options)}"] if options else []) + (
            [f"{others} unexpected argument(s) (not shown)"] if others else [])
        hint = ("; a password is never taken from the command line: answer the prompt or use "
                "--password-file FILE ('-' for stdin)") if any("pass" in o for o in options) else ""
        raise ConfigError(" and ".join(parts) + hint + " (see ei auth --help)")
    settings_argv = [item for f in _SETTINGS
                     if getattr(args, f"setting_{f.name}", None) is not None
                     for item in (_flag(f), getattr(args, f"setting_{f.name}"))]
    return args, parse_settings(AuthSettings, settings_argv, prog="ei auth")


def read_password(password_file: str | None) -> str:
    """The new user's password from the file, stdin or the terminal (asked twice)."""
    if password_file == "-":
        return sys.stdin.readline().rstrip("\r\n")
    if password_file:
        try:
            with Path(password_file).open(encoding="utf-8") as fh:
                return fh.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise AuthError(f"cannot read the password file: {reason}") from None
    if not sys.stdin.isatty():
        raise AuthError("no terminal to ask the password on: use --password-file FILE, or "
                        "--password-file - to read one line of stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise AuthError("the two passwords differ; nothing was changed")
    return first


def when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t)) if t else "never"


def render(store: AuthStore) -> str:
    """``ei auth list``: both tables, with nothing secret in them."""
    users = [(u.name, str(u.role), when(u.created)) for u in store.users()]
    tokens = [(t.name, str(t.role), when(t.created), when(t.last_used))
              for t in store.tokens()]
    return ("USERS\n" + table(users, ("user", "role", "created")) + "\n\nTOKENS\n"
            + table(tokens, ("token", "role", "created", "last_used")))


def main(argv: list[str]) -> int:
    args, settings = parse(argv)
    # Checked before anything else, so a mistyped role costs no prompt.
    role = Role.parse(args.role) if getattr(args, "role", None) else None
    client = connect(settings.redis_url)
    try:
        store = AuthStore(client)
        migrate_legacy_keys(client)
        if args.kind == "list":
            sys.stdout.write(render(store) + "\n")
        elif args.kind == "user" and args.action == "add" and role is not None:
            if store.has_user(args.name):  # said before the prompt, like a wrong role
                raise AuthError(f"user {args.name!r} exists already; remove it first")
            user = store.add_user(args.name, role, read_password(args.password_file))
            sys.stdout.write(f"user {user.name} added with role {user.role}\n")
        elif args.kind == "user":
            store.remove_user(args.name)
            sys.stdout.write(f"user {args.name} removed; tokens are not users' and stay\n")
        elif args.action == "create" and role is not None:
            new = store.create_token(role, args.name)
            sys.stderr.write(f"token {new.info.name} created with role {new.info.role}; it is "
                             "shown once, below: keep it now (revoke it by its name)\n")
            sys.stderr.flush()
            sys.stdout.write(new.token + "\n")
        else:
            store.revoke_token(args.name)
            sys.stdout.write(f"token {args.name} revoked\n")
    finally:
        client.close()
    return 0
