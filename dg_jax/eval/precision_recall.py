"""Improved precision and recall (Kynkaenniemi et al. 2019) with k-NN manifolds, k = 3.

The manifold of a feature set is the union of balls centred at each feature with radius its
distance to its k-th nearest neighbour in the same set (the point itself excluded). Precision is
the fraction of generated features inside the real manifold; recall the fraction of real features
inside the generated manifold. As in the authors' code (and ADM's evaluator), squared Euclidean
distances are compared with squared radii, and distances are computed in row x column blocks so
that 50k x 50k sets fit in memory; the blocks run as jitted JAX functions.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _sq_dists(a, b):
    """max(|a|^2 - 2 a.b + |b|^2, 0) for every row pair."""
    aa = jnp.sum(a * a, axis=1)[:, None]
    bb = jnp.sum(b * b, axis=1)[None, :]
    return jnp.maximum(aa - 2.0 * (a @ b.T) + bb, 0.0)


@functools.partial(jax.jit, static_argnames="k")
def _knn_update(best, rows, cols, col_valid, k: int):
    """Merge the k+1 smallest squared distances so far with a new column block."""
    d = jnp.where(col_valid[None, :], _sq_dists(rows, cols), jnp.inf)
    merged = jnp.concatenate([best, d], axis=1)
    return -jax.lax.top_k(-merged, k + 1)[0]


@jax.jit
def _manifold_update(inside, rows, cols, col_radii_sq):
    """inside |= any_j |rows_i - cols_j|^2 <= radius_j^2 (padded columns have radius -inf)."""
    return inside | jnp.any(_sq_dists(rows, cols) <= col_radii_sq[None, :], axis=1)


def _blocks(x: np.ndarray, size: int):
    """Yield (block padded to `size` rows, number of valid rows)."""
    for start in range(0, x.shape[0], size):
        block = x[start:start + size]
        n = block.shape[0]
        if n < size:
            block = np.concatenate([block, np.zeros((size - n, x.shape[1]), x.dtype)])
        yield block, n


def knn_radii_sq(features, k: int = 3, row_batch: int = 10000, col_batch: int = 10000,
                 dtype=np.float32) -> np.ndarray:
    """Squared distance of each feature to its k-th nearest neighbour in the set (self excluded).

    The smallest distance of a row is (numerically) its distance to itself, so the radius is the
    (k+1)-th smallest, as `np.partition(d, kth=k)` in the reference code.
    """
    x = np.asarray(features, dtype)
    n = x.shape[0]
    if n <= k:
        raise ValueError(f"need more than k={k} features for k-NN radii, got {n}")
    row_batch, col_batch = min(row_batch, n), min(col_batch, n)
    out = []
    for rows, n_rows in _blocks(x, row_batch):
        best = np.full((row_batch, k + 1), np.inf, dtype)
        for cols, n_cols in _blocks(x, col_batch):
            valid = np.arange(col_batch) < n_cols
            best = _knn_update(best, rows, cols, valid, k)
        out.append(np.asarray(best[:n_rows, k]))
    return np.concatenate(out)


def fraction_in_manifold(queries, manifold_features, manifold_radii_sq, row_batch: int = 10000,
                         col_batch: int = 10000, dtype=np.float32) -> float:
    """Fraction of `queries` within radius_j of some manifold feature j."""
    q = np.asarray(queries, dtype)
    m = np.asarray(manifold_features, dtype)
    r = np.asarray(manifold_radii_sq, dtype)
    row_batch, col_batch = min(row_batch, q.shape[0]), min(col_batch, m.shape[0])
    count = 0
    for rows, n_rows in _blocks(q, row_batch):
        inside = jnp.zeros((row_batch,), bool)
        for start in range(0, m.shape[0], col_batch):
            cols, n_cols = next(_blocks(m[start:start + col_batch], col_batch))
            radii = np.full((col_batch,), -np.inf, dtype)
            radii[:n_cols] = r[start:start + n_cols]
            inside = _manifold_update(inside, rows, cols, radii)
        count += int(np.asarray(inside[:n_rows]).sum())
    return count / q.shape[0]


def precision_recall(real_features, gen_features, k: int = 3, row_batch: int = 10000,
                     col_batch: int = 10000, dtype=np.float32) -> tuple[float, float]:
    """(precision, recall) of generated vs real features with k-NN manifolds."""
    real = np.asarray(real_features, dtype)
    gen = np.asarray(gen_features, dtype)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"feature sets must be (N, D) with equal D, got {real.shape}, {gen.shape}")
    kw = dict(row_batch=row_batch, col_batch=col_batch, dtype=dtype)
    real_radii = knn_radii_sq(real, k, **kw)
    gen_radii = knn_radii_sq(gen, k, **kw)
    precision = fraction_in_manifold(gen, real, real_radii, **kw)
    recall = fraction_in_manifold(real, gen, gen_radii, **kw)
    return precision, recall
