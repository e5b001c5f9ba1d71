"""Sample-based distances between point clouds (low-dimensional data)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _mean_pairwise(x, y_chunk):
    d = jnp.sqrt(jnp.maximum(jnp.sum((x[:, None, :] - y_chunk[None]) ** 2, -1), 0.0))
    return jnp.sum(d)


def mean_pairwise_distance(x, y, chunk: int = 1024, exclude_diagonal: bool = False) -> float:
    """E|X - Y| over all pairs in float64 accumulation; with `exclude_diagonal` (x is y) the
    n(n-1) off-diagonal pairs only (diagonal terms are zero, so only the count changes)."""
    x = jnp.asarray(x, jnp.float32)
    y = np.asarray(y, np.float32)
    total = 0.0  # the last, shorter chunk compiles once more; sums accumulate in float64
    for start in range(0, len(y), chunk):
        total += float(_mean_pairwise(x, jnp.asarray(y[start:start + chunk])))
    n_pairs = len(x) * len(y) - (len(x) if exclude_diagonal else 0)
    return total / n_pairs


def energy_distance(x, y) -> float:
    """Unbiased energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (U-statistics for the within terms)."""
    xy = mean_pairwise_distance(x, y)
    xx = mean_pairwise_distance(x, x, exclude_diagonal=True)
    yy = mean_pairwise_distance(y, y, exclude_diagonal=True)
    return 2.0 * xy - xx - yy
