"""Named random streams: every random number a job draws comes from (seed, stream, path...).

A job has one integer seed. Each use of randomness names a stream and, inside it, a path of
names or integers (which network, which stage, which step):

  key(seed, "init", "score")        the score network's initial parameters
  key(seed, "train", "disc")        the discriminator's per-step keys (fold_in(., step) inside)
  key(seed, "sample")               sampler latents / noise
  numpy(seed, "data", "score", i)   host-side minibatch indices of step i

and the key is `fold_in(... fold_in(fold_in(PRNGKey(seed), STREAM_ID[stream]), p1) ..., pk)`
with names mapped to integers by CRC-32 (stable across runs, Python versions and machines).
Two consequences that `PRNGKey(seed + k)` did not have: keys of different seeds never coincide
by construction (seed 7's init key is not seed 0's sampler key), and adding a new stream or
path never shifts the numbers of an existing one. NumPy generators (host-side batch indices)
are seeded by the same integer path, `np.random.default_rng([seed, STREAM_ID, p1, ...])`.

The streams:
  data      minibatch composition and data subsets (host side)
  init      initial parameters
  train     per-step training randomness (noise levels, dropout, augmentation)
  generate  the fake set a discriminator is trained against
  sample    latents and per-step noise of the samplers that produce the reported samples
  eval      evaluation-only randomness (reference draws, probes, feature-network training)
"""
from __future__ import annotations

import zlib
from typing import Union

import jax
import numpy as np

STREAMS = ("data", "init", "train", "generate", "sample", "eval")
STREAM_ID = {name: i + 1 for i, name in enumerate(STREAMS)}

PathPart = Union[str, int]


def _part(p: PathPart) -> int:
    if isinstance(p, (bool, np.bool_)):
        raise TypeError(f"rng path part {p!r}: use a name or a non-negative integer")
    if isinstance(p, (int, np.integer)):
        if not 0 <= int(p) < 2**31:
            raise ValueError(f"rng path part {p} must be in [0, 2**31)")
        return int(p)
    if isinstance(p, str):
        return zlib.crc32(p.encode()) & 0x7FFFFFFF
    raise TypeError(f"rng path part {p!r} must be a str or an int")


def path_ints(stream: str, *path: PathPart) -> tuple[int, ...]:
    """The integers (stream id, parts...) that `key` folds in and `numpy` seeds with."""
    if stream not in STREAM_ID:
        raise ValueError(f"unknown rng stream {stream!r}; choose one of {list(STREAMS)}")
    return (STREAM_ID[stream],) + tuple(_part(p) for p in path)


def key(seed: int, stream: str, *path: PathPart) -> jax.Array:
    """The JAX key of `stream` / `path` for this seed."""
    k = jax.random.PRNGKey(int(seed))
    for i in path_ints(stream, *path):
        k = jax.random.fold_in(k, i)
    return k


def numpy(seed: int, stream: str, *path: PathPart) -> np.random.Generator:
    """A NumPy generator of `stream` / `path` for this seed (host-side draws)."""
    return np.random.default_rng([int(seed), *path_ints(stream, *path)])


class Streams:
    """`key` and `numpy` bound to one seed: `streams = Streams(config.seed)`,
    `streams.key("init", "score")`, `streams.numpy("data", "disc", step)`."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def key(self, stream: str, *path: PathPart) -> jax.Array:
        return key(self.seed, stream, *path)

    def numpy(self, stream: str, *path: PathPart) -> np.random.Generator:
        return numpy(self.seed, stream, *path)

    def __repr__(self) -> str:
        return f"Streams(seed={self.seed})"
