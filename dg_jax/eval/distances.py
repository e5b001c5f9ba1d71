"""Sample-based distances between point clouds (low-dimensional data)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.errors import NonFiniteError, check_finite_array


@jax.jit
def _mean_pairwise(x, y_chunk):
    d = jnp.sqrt(jnp.maximum(jnp.sum((x[:, None, :] - y_chunk[None]) ** 2, -1), 0.0))
    return jnp.sum(d)


def mean_pairwise_distance(x, y, chunk: int = 1024, exclude_diagonal: bool = False) -> float:
    """E|X - Y| over all pairs, computed in float64 (the energy distance is a small difference
    of such means); with `exclude_diagonal` (x is y) the n(n-1) off-diagonal pairs only
    (diagonal terms are zero, so only the count changes)."""
    with jax.enable_x64(True):
        x = jnp.asarray(np.asarray(x, np.float64))
        y = np.asarray(y, np.float64)
        total = 0.0  # the last, shorter chunk compiles once more
        for start in range(0, len(y), chunk):
            total += float(_mean_pairwise(x, jnp.asarray(y[start:start + chunk])))
    n_pairs = len(x) * len(y) - (len(x) if exclude_diagonal else 0)
    return total / n_pairs


def energy_distance(x, y) -> float:
    """Unbiased energy distance 2 E|X-Y| - E|X-X'| - E|Y-Y'| (U-statistics for the within terms).

    Non-negative up to its sampling noise (of order E|X-Y| / n); a clearly negative or
    non-finite value means the samples are broken, and raises `NonFiniteError`."""
    for name, a in (("x", x), ("y", y)):
        check_finite_array(a, "energy distance", f"points {name}")
    xy = mean_pairwise_distance(x, y)
    xx = mean_pairwise_distance(x, x, exclude_diagonal=True)
    yy = mean_pairwise_distance(y, y, exclude_diagonal=True)
    ed = 2.0 * xy - xx - yy
    if not np.isfinite(ed) or ed < -10.0 * xy / min(len(x), len(y)):
        raise NonFiniteError(f"[energy distance] {ed} from means E|X-Y|={xy}, E|X-X'|={xx}, "
                             f"E|Y-Y'|={yy}: the points are degenerate or overflow")
    return ed
