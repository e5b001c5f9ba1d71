"""The one check of a checkpoint's state dict against the tensors a network needs.

Every converter (EDM pickles `edm.py`, guided-diffusion / DG .pt `adm.py`, pytorch-fid .pth
`inception.py`) lists the tensors its Flax tree needs by their names in the file and their
shapes in the file's own layout, `{name: shape}`, and hands them with the file's state dict to
`match_state_dict`. That checks that every needed tensor is there, has that shape and a floating
dtype, and that the file holds nothing else; all problems of a file come back in one
`StateDictMismatch` (a `CheckpointError`, hence a ValueError) of one line:

    FILE: state dict does not match WHAT: missing tensors: a (3, 4), b (5,);
    unexpected tensors: c (2,); mis-shaped tensors: d: file (8, 3) vs model (3, 8); <what to do>

Layout changes (OIHW -> HWIO, ...) stay with the converters: the matcher only names and counts.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from dg_jax.errors import CheckpointError

LIST_LIMIT = 10   # names listed per kind of problem; the rest are counted
DEFAULT_HINT = ("check that this is the checkpoint meant here and that the architecture flags "
                "it is loaded with are the ones it was trained with")


class StateDictMismatch(CheckpointError):
    """A state dict does not match a network. `missing` and `unexpected` hold tensor names,
    `misshaped` (name, file shape, model shape) triples, `mistyped` (name, dtype) pairs of
    tensors that are not floating; the message lists them and names the file."""

    def __init__(self, message: str, *, missing: Sequence[str] = (),
                 unexpected: Sequence[str] = (),
                 misshaped: Sequence[tuple[str, tuple, tuple]] = (),
                 mistyped: Sequence[tuple[str, np.dtype]] = ()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.misshaped = list(misshaped)
        self.mistyped = list(mistyped)


def _shape(shape) -> str:
    return str(tuple(int(s) for s in shape))


def _listing(title: str, items: list[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return f"{title}: {shown}{more}"


def match_state_dict(state_dict: Mapping[str, Any], expected: Mapping[str, Sequence[int]], *,
                     what: str, source: str | os.PathLike,
                     ignore: Optional[Callable[[str], bool]] = None,
                     hint: str = DEFAULT_HINT, limit: int = LIST_LIMIT) -> dict[str, np.ndarray]:
    """The tensors `expected` names, `{name: array as stored}` in `expected`'s order.

    `expected` maps each tensor the network needs to its shape in the file's layout. A tensor
    is mis-shaped when its shape differs or its dtype is not floating. Names for which
    `ignore(name)` is true (e.g. BatchNorm's `num_batches_tracked`) may be present or not.
    Raises `StateDictMismatch` naming `source` (the file), `what` (the network), up to `limit`
    missing and unexpected names and mis-shaped tensors each, and `hint` (what to do).
    """
    found: dict[str, np.ndarray] = {}
    missing: list[str] = []
    misshaped: list[tuple[str, tuple, tuple]] = []
    bad_dtype: list[tuple[str, tuple, Any]] = []
    for name, shape in expected.items():
        shape = tuple(int(s) for s in shape)
        if name not in state_dict:
            missing.append(name)
            continue
        value = np.asarray(state_dict[name])
        if value.shape != shape:
            misshaped.append((name, value.shape, shape))
        elif not np.issubdtype(value.dtype, np.floating):
            bad_dtype.append((name, value.shape, value.dtype))
        else:
            found[name] = value
    unexpected = [name for name in state_dict
                  if name not in expected and not (ignore is not None and ignore(name))]
    if not (missing or unexpected or misshaped or bad_dtype):
        return found
    parts = []
    if missing:
        parts.append(_listing("missing tensors",
                              [f"{n} {_shape(expected[n])}" for n in missing], limit))
    if unexpected:
        parts.append(_listing("unexpected tensors",
                              [f"{n} {_shape(np.shape(state_dict[n]))}" for n in unexpected],
                              limit))
    if misshaped or bad_dtype:
        items = [f"{n}: file {_shape(f)} vs model {_shape(m)}" for n, f, m in misshaped]
        items += [f"{n}: file {_shape(s)} {d} vs model {_shape(s)} floating"
                  for n, s, d in bad_dtype]
        parts.append(_listing("mis-shaped tensors", items, limit))
    raise StateDictMismatch(
        f"{os.fspath(source)}: state dict does not match {what}: " + "; ".join(parts)
        + f"; {hint}",
        missing=missing, unexpected=unexpected,
        misshaped=misshaped, mistyped=[(n, d) for n, _, d in bad_dtype])
