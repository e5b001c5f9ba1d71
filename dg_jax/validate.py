"""Config checks shared by the experiments: each raises `ConfigError` naming the field and what
would be valid, so a run fails before it writes or computes anything."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from dg_jax.errors import ConfigError


def get_field(config, dotted: str) -> Any:
    """config['a']['b'] for 'a.b' (ConfigDicts and dicts)."""
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def check_positive(config, fields: Iterable[str]) -> None:
    """Every dotted field must be a positive integer (batch sizes, step counts, sample counts)."""
    for field in fields:
        value = get_field(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{field}={value!r} must be a positive integer")


def check_choice(value, choices: Sequence, field: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {field}={value!r}; choose one of {list(choices)}")
