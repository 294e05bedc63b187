"""Auth stores for tests, made once per worker and copied for each test: creating a user costs a
policy check and an argon2 hash, more than most auth tests themselves."""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from api.auth.model import Role, Scope
from api.auth.passwords import PasswordHasher
from api.auth.store import AuthStore


@dataclass(frozen=True, slots=True)
class AuthUser:
    name: str
    password: str
    role: Role | str
    scope: Scope
    display_name: str = ""
    actor: str = "test"


def cheap_hasher() -> PasswordHasher:
    """argon2id at its lowest cost: the tests check what is hashed, not how hard."""
    return PasswordHasher(time_cost=1, memory_cost=64)


@functools.cache
def _templates_folder() -> Path:
    """One temporary folder per worker for the templates; removed when the worker exits."""
    folder = tempfile.TemporaryDirectory(prefix="hazmon-auth-templates-")
    _keep_until_exit.append(folder)
    return Path(folder.name)


_keep_until_exit: list[tempfile.TemporaryDirectory] = []


@functools.cache
def _template(
    users: tuple[AuthUser, ...], tokens: bool, made_at_ms: int | None
) -> tuple[Path, dict[str, str]]:
    path = _templates_folder() / f"auth-{_template.cache_info().currsize}.sqlite"
    clock = None if made_at_ms is None else (lambda: made_at_ms)
    secrets = {}
    with AuthStore(path, hasher=cheap_hasher(), clock=clock) as store:
        for u in users:
            store.create_user(u.name, u.password, u.role, u.scope, display_name=u.display_name, actor=u.actor)
            if tokens:
                secrets[u.name] = store.create_token(u.name, "test", actor="test")[1]
    return path, secrets


def auth_store_copy(
    folder: Path,
    users: tuple[AuthUser, ...],
    *,
    tokens: bool = False,
    made_at_ms: int | None = None,
    clock: Callable[[], int] | None = None,
) -> tuple[AuthStore, dict[str, str]]:
    """A fresh store in ``folder`` with ``users`` (and an API token each, if asked): a copy of one
    made once per worker, at ``made_at_ms`` if given. Returns it and the token secrets by user."""
    template, secrets = _template(users, tokens, made_at_ms)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, folder / "auth.sqlite")
    return AuthStore(folder / "auth.sqlite", hasher=cheap_hasher(), clock=clock), dict(secrets)
