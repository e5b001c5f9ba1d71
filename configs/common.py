"""What every config file shares (not a config itself): `parse_arg`, the one parser of the
argument after a config's path (--config=configs/NAME.py:ARG), and `base_config`, the fields
every config has.

  arg = parse_arg(arg, allowed_flags=("cond", "smoke"), res=32, lr=1e-3)
  parse_arg("cond,smoke,res=16,lr=3e-4")  ->  cond=True, smoke=True, res=16, lr=0.0003

A flag is True when named (or given as flag=True/False); a key=value item takes the type of its
default (int, float, bool or str). Anything else raises a ValueError naming the config file and
what it accepts.
"""
from __future__ import annotations

import functools
import inspect
import pathlib

import ml_collections

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_TYPES = (bool, int, float, str)


def _config_name(config_file) -> str:
    path = pathlib.Path(config_file)
    return f"{path.parent.name}/{path.name}" if path.parent.name == "configs" else path.name


def _convert(value: str, like):
    """`value` as the type of the default `like`; ValueError if it is not one."""
    if isinstance(like, bool):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError("not a bool (True/False)")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def parse_arg(arg: str | None = None, *, allowed_flags=(), config_file: str | None = None,
              **defaults) -> ml_collections.ConfigDict:
    """The config argument `arg` ("", "smoke", "cond,smoke", "smoke,res=32,lr=1e-3,name=foo")
    as a ConfigDict with one bool per allowed flag and one typed value per key of `defaults`.

    config_file: the config's path for the error messages (default: the calling module's)."""
    if config_file is None:
        config_file = inspect.currentframe().f_back.f_globals.get("__file__", "<config>")
    name = _config_name(config_file)
    flags = tuple(allowed_flags)
    for key, value in defaults.items():
        if key in flags or not isinstance(value, _TYPES):
            raise TypeError(f"{name}: parse_arg default {key}={value!r} must be one of "
                            f"{[t.__name__ for t in _TYPES]} and not also a flag")
    accepted = list(flags) + [f"{k}=<{type(v).__name__}>" for k, v in defaults.items()]
    allowed = (f"allowed: {', '.join(accepted)} (comma-separated)" if accepted
               else "it takes no argument")
    out = {**{f: False for f in flags}, **defaults}
    unknown, seen = [], set()
    for item in filter(None, (part.strip() for part in (arg or "").split(","))):
        key, has_value, value = (part.strip() for part in item.partition("="))
        has_value = bool(has_value)
        if key not in out:
            unknown.append(key)
            continue
        if key in seen:
            raise ValueError(f"{name}: config argument {key!r} given twice in {arg!r}")
        seen.add(key)
        like = True if key in flags else out[key]
        if not has_value:
            if not isinstance(like, bool):
                raise ValueError(f"{name}: config argument {key!r} needs a value "
                                 f"({key}=<{type(like).__name__}>); {allowed}")
            out[key] = True
            continue
        try:
            out[key] = _convert(value, like)
        except ValueError as err:
            raise ValueError(f"{name}: bad value {key}={value!r} in {arg!r}: expected "
                             f"{type(like).__name__} ({err}); {allowed}") from None
    if unknown:
        raise ValueError(f"{name}: unknown config argument(s) {unknown} in {arg!r}; {allowed}")
    return ml_collections.ConfigDict(out)


def base_config(pipeline: str, **fields) -> ml_collections.ConfigDict:
    """The fields every config has (its pipeline, seed 0, no TensorBoard, no stage forced to be
    redone: `redo` names stages to retrain from scratch in an existing workdir) and `fields`."""
    config = ml_collections.ConfigDict(dict(pipeline=pipeline, seed=0, tensorboard=False,
                                            redo=()))
    config.update(fields)
    return config


def _tuples(tree):
    if isinstance(tree, dict):
        return {k: _tuples(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return tuple(_tuples(v) for v in tree)
    return tree


def command_line(get_config):
    """Decorator of a config file's `get_config`: every list in the config it returns becomes a
    tuple, so that the command line can override it. ml_collections' config flags refuse a list
    field but parse a tuple one: --config.sweep.cg_weights='(10.0, 30.0)' (or the flag repeated,
    --config.sweep.cg_weights=10.0 --config.sweep.cg_weights=30.0)."""
    @functools.wraps(get_config)
    def wrapped(arg: str | None = None) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(_tuples(get_config(arg).to_dict()))
    return wrapped
