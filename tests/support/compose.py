"""Compose's variable interpolation, for reading docker-compose.yml as `docker compose config`
would show it, without Docker."""

from __future__ import annotations

import re

# the forms docker-compose.yml uses: $$, ${VAR}, ${VAR:-default}, ${VAR:?message}
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """`value` with its variables replaced from `env`; ${VAR:?message} with VAR unset or empty is
    an error naming VAR and the message, as compose reports it."""

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, kind, arg = m.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"required variable {name} is missing a value: {arg}")
        return arg if kind == "-" else ""

    return VARIABLE.sub(one, value)


def interpolate_tree(node, env: dict[str, str]):
    """Every string in a parsed compose document, interpolated."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node
