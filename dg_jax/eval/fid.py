"""FID, Inception Score and KID from Inception features, computed as the papers' code does.

- FID (Heusel et al. 2017), `||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})` in float64 with
  `scipy.linalg.sqrtm`, with pytorch-fid's `calculate_frechet_distance` safeguards (EDM and DG
  compute the same quantity).
- Inception Score (Salimans et al. 2016), `exp(E_x KL(p(y|x) || p(y)))` over 10 splits, as the
  original improved-GAN code (which takes the softmax of pool3 @ W *without* the fc bias; see
  `inception_score_logits`).
- KID (Binkowski et al. 2018), the unbiased MMD^2 with the cubic polynomial kernel
  `k(x, y) = (x.y / d + 1)^3`, averaged over random subsets (StyleGAN2-ADA's estimator).
- `real_floor`: the FD between two disjoint random halves of one real feature set, the floor a
  model's FD is read against.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from dg_jax.eval.stats_io import feature_statistics


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6,
                     imag_atol: float = 1e-3) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), float64.

    If sqrtm(sigma1 @ sigma2) is not finite (singular product), eps * I is added to both
    covariances and the root recomputed. Small imaginary parts from numerical error are dropped;
    a diagonal imaginary part above `imag_atol` raises ValueError (as pytorch-fid).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different shapes: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"covariances {sigma1.shape}, {sigma2.shape} do not match mean "
                         f"{mu1.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular product of covariances; adding {eps} to the diagonal",
                      RuntimeWarning, stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=imag_atol):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in "
                             "sqrtm(sigma1 @ sigma2)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_features(features1, features2) -> float:
    """FID between two feature sets (rows are samples)."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def _softmax64(logits) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def inception_score(logits, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) over splits of exp(mean_x KL(p(y|x) || p_split(y))), p = softmax(logits).

    Split i holds rows [i*N//s, (i+1)*N//s), as in improved-GAN and StyleGAN's metrics.
    """
    probs = _softmax64(logits)
    n = probs.shape[0]
    if n < num_splits:
        raise ValueError(f"inception_score needs at least {num_splits} samples, got {n}")
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits:(i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_logits(pool3, fc_kernel) -> np.ndarray:
    """pool3 @ W: the logits the original Inception Score code uses (fc bias left out).

    `fc_kernel` is `variables['params']['fc']['kernel']` (2048, 1008).
    """
    return np.asarray(pool3, np.float64) @ np.asarray(fc_kernel, np.float64)


def kernel_inception_distance(features_gen, features_real, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID: mean over subsets of the unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3.

    Each subset draws m = min(N_gen, N_real, max_subset_size) rows of each set without
    replacement (StyleGAN2-ADA's `kernel_inception_distance`, float64).
    """
    x_all = np.asarray(features_gen, np.float64)
    y_all = np.asarray(features_real, np.float64)
    if x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"feature widths differ: {x_all.shape[1]} vs {y_all.shape[1]}")
    d = x_all.shape[1]
    m = min(x_all.shape[0], y_all.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        total += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    return float(total / num_subsets / m)


def real_floor(features_real, rng: np.random.Generator) -> float:
    """The real-vs-real floor of the Fréchet distance: the FD between two disjoint random halves
    (N // 2 rows each, drawn by `rng`, e.g. `dg_jax.rng.numpy(seed, "eval", "floor")`) of one
    real feature set, e.g. a test set's 10,000 features.

    It is what a generator that samples the real distribution exactly would score with N // 2
    samples against N // 2 reference images: FD estimated from finitely many samples is biased
    upwards (the covariances' sampling noise), so a model's FD is read against this floor, not
    against 0. It grows as N shrinks and with the feature width; it is positive whenever the
    halves differ at all."""
    f = np.asarray(features_real)
    if f.ndim != 2 or f.shape[0] < 4:
        raise ValueError(f"real_floor needs a feature matrix of at least 4 rows, got {f.shape}")
    half = f.shape[0] // 2
    order = rng.permutation(f.shape[0])
    return fid_from_features(f[order[:half]], f[order[half:2 * half]])
