"""The errors a user can fix: each names the field, file or quantity at fault and says what to do.

Entry points (`launch/`) print a `UserError` as one line and exit non-zero, without a traceback
unless `--verbose` is given; anything else is a bug and keeps its traceback.

    UserError            base class
    ConfigError          a config field is invalid (names the field)            also a ValueError
    WorkdirError         the workdir belongs to another experiment or configuration
    NonFiniteError       a stage produced NaN/Inf or a meaningless number       also a FloatingPointError
    JsonFileError        a JSON file cannot be read (names the file)           also a ValueError
    CheckpointError      a checkpoint is unreadable, altered or of the wrong kind also a ValueError

Readers of other files have their own subclasses beside them (`ShardError`,
`ReferenceDataError`, `StatsFileError`).
"""
from __future__ import annotations

import json
import math
import numbers
import pathlib
from typing import Any

import numpy as np


class UserError(Exception):
    """An error the user can fix; its message says what is wrong and what to do."""


class ConfigError(UserError, ValueError):
    """An invalid config field (the message names it)."""


class WorkdirError(UserError):
    """The workdir cannot be used for this run (another experiment, or changed fields)."""


class NonFiniteError(UserError, FloatingPointError):
    """A stage produced a non-finite or meaningless quantity (the message names the stage and
    the first such quantity)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint (official or dg_jax's) cannot be read or does not match what it should be."""


class JsonFileError(UserError, ValueError):
    """A JSON file is missing or malformed (the message names the file)."""


def read_json(path: str | pathlib.Path, what: str = "JSON file") -> Any:
    """The parsed contents of `path`; `JsonFileError` naming the file and the position of a
    syntax error."""
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise JsonFileError(f"{what} {path} not found") from None
    except OSError as err:
        raise JsonFileError(f"cannot read {what} {path}: {err.strerror or err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JsonFileError(f"{what} {path} is not valid JSON: {err.msg} at line {err.lineno} "
                            f"column {err.colno}") from None


def first_non_finite(obj: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN or infinite float inside nested dicts/lists, or None."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = first_non_finite(value, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            found = first_non_finite(value, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):
        if not math.isfinite(float(obj)):
            return f"{path} = {float(obj)}"
    return None


def check_finite_array(x, stage: str, what: str) -> None:
    """Raises `NonFiniteError` naming `stage` and `what` when the array `x` holds NaN or Inf."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.inexact):
        bad = ~np.isfinite(x)
        if bad.any():
            first = np.unravel_index(int(np.argmax(bad)), x.shape)
            raise NonFiniteError(f"[{stage}] {what}: {int(bad.sum())} of {x.size} values are not "
                                 f"finite (first at index {tuple(int(i) for i in first)}); the "
                                 "model or guidance diverged")


def check_finite(obj: Any, stage: str) -> None:
    """Raises `NonFiniteError` naming `stage` and the first non-finite number in `obj`."""
    found = first_non_finite(obj)
    if found is not None:
        raise NonFiniteError(f"[{stage}] non-finite result {found}: the run diverged or its "
                             "inputs are broken; nothing was written")
