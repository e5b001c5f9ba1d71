"""The one network boundary: denoiser D(x; sigma) on the EDM variable x = x_0 + sigma * eps.

A network is used as `denoise(params, x, sigma, labels) -> D` (the x_0 estimate). Score and eps
are derived from a denoiser here and nowhere else:
    score(x; sigma) = (D - x) / sigma^2,        eps(x; sigma) = (x - D) / sigma.
sigma is a scalar or has one entry per row of x (shape (B,)); it is cast to x's dtype.
EDM's preconditionings D = c_skip x + c_out F(c_in x, c_noise) (VP, VE, iDDPM, EDM) are in
`dg_jax.models.edm_precond`.
"""
from __future__ import annotations

import jax.numpy as jnp


def _expand(sigma, x):
    sigma = jnp.asarray(sigma, x.dtype)
    return sigma.reshape(sigma.shape + (1,) * (x.ndim - sigma.ndim)) if sigma.ndim else sigma


def denoiser_to_score(denoised, x, sigma):
    s = _expand(sigma, x)
    return (denoised - x) / s**2


def score_to_denoiser(score, x, sigma):
    s = _expand(sigma, x)
    return x + s**2 * score


def denoiser_to_eps(denoised, x, sigma):
    """eps = (x - D) / sigma, also the EDM ODE's slope dx/dsigma."""
    return (x - denoised) / _expand(sigma, x)


def eps_to_denoiser(eps, x, sigma):
    return x - _expand(sigma, x) * eps
