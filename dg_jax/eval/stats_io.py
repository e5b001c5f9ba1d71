"""Inception feature statistics (mu, sigma) and the EDM / DG reference `.npz` format.

EDM's `fid.py ref` writes `np.savez(path, mu=mu, sigma=sigma)` with mu (2048,) and sigma
(2048, 2048) in float64; DG's reference statistics (e.g. `cifar10-32x32.npz`) use the same keys.
"""
from __future__ import annotations

import os

import numpy as np

from dg_jax.errors import UserError
from dg_jax.models.inception import POOL3_DIM

STATS_KEYS = ("mu", "sigma")


class StatsFileError(UserError, ValueError):
    """A statistics file is unreadable, lacks `mu`/`sigma`, or has the wrong feature width."""


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """mu = mean(f), sigma = unbiased covariance (N - 1), in float64 (as EDM and pytorch-fid)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def save_stats(path: str | os.PathLike, mu, sigma) -> None:
    """Write `mu`, `sigma` (float64) to an .npz readable by EDM's and DG's fid.py."""
    mu = np.asarray(mu, np.float64)
    sigma = np.asarray(sigma, np.float64)
    _check_shapes(os.fspath(path), mu, sigma, dim=mu.shape[-1] if mu.ndim == 1 else None)
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a bare name
        np.savez(f, mu=mu, sigma=sigma)


def load_stats(path: str | os.PathLike, dim: int | None = POOL3_DIM
               ) -> tuple[np.ndarray, np.ndarray]:
    """Read (mu, sigma) in float64 from an EDM/DG reference .npz.

    `dim` is the expected feature width (2048 for Inception pool3; None accepts any consistent
    width). Raises StatsFileError naming the file and the key at fault.
    """
    path = os.fspath(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise StatsFileError(f"{path}: cannot read statistics file ({err})") from err
    with data:
        if not hasattr(data, "files"):
            raise StatsFileError(f"{path}: expected an .npz with keys {STATS_KEYS}, got a "
                                 "single array")
        for key in STATS_KEYS:
            if key not in data.files:
                raise StatsFileError(f"{path}: missing key {key!r} (found {sorted(data.files)})")
        mu = np.asarray(data["mu"], np.float64)
        sigma = np.asarray(data["sigma"], np.float64)
    _check_shapes(path, mu, sigma, dim)
    return mu, sigma


def _check_shapes(path: str, mu: np.ndarray, sigma: np.ndarray, dim: int | None) -> None:
    if mu.ndim != 1:
        raise StatsFileError(f"{path}: key 'mu' must be a vector, got shape {mu.shape}")
    width = mu.shape[0] if dim is None else dim
    if mu.shape != (width,):
        raise StatsFileError(f"{path}: key 'mu' has feature width {mu.shape[0]}, "
                             f"expected {width}")
    if sigma.shape != (width, width):
        raise StatsFileError(f"{path}: key 'sigma' has shape {sigma.shape}, "
                             f"expected ({width}, {width})")
