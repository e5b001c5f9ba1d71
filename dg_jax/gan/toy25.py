"""The 25-Gaussians benchmark: a 5x5 grid of modes at {-4,-2,0,2,4}^2, std 0.05 (VEEGAN/PacGAN).

`modes_covered`: modes receiving at least 1% of the samples that lie within 3 std of them;
`high_quality_fraction`: fraction of samples within 3 std of some mode.
"""
from __future__ import annotations

import numpy as np


def grid_means(grid: int = 5, spacing: float = 2.0) -> np.ndarray:
    c = (np.arange(grid) - (grid - 1) / 2) * spacing
    return np.stack(np.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)


def sample(rng: np.random.Generator, n: int, means: np.ndarray, std: float) -> np.ndarray:
    idx = rng.integers(0, len(means), n)
    return (means[idx] + std * rng.standard_normal((n, 2))).astype(np.float32)


def mode_metrics(x: np.ndarray, means: np.ndarray, std: float, min_fraction: float = 0.01) -> dict:
    """{'modes_covered', 'high_quality_fraction', 'mode_counts'} for samples x (N, 2)."""
    d = np.linalg.norm(x[:, None, :] - means[None], axis=-1)
    nearest = np.argmin(d, axis=1)
    good = d[np.arange(len(x)), nearest] <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(means))
    return {"modes_covered": int(np.sum(counts >= min_fraction * len(x))),
            "high_quality_fraction": float(np.mean(good)),
            "mode_counts": counts.tolist()}
