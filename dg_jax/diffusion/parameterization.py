"""The one network boundary: denoiser D(x; sigma) on the EDM variable x = x_0 + sigma * eps.

A network is used as `denoise(params, x, sigma, labels) -> D`. Score and eps are derived here
and nowhere else:
    score(x; sigma) = (D - x) / sigma^2,        eps(x; sigma) = (x - D) / sigma.
EDM-style preconditioning wraps a raw network F: D = c_skip x + c_out F(c_in x, c_noise).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp

PRECONDITIONINGS = ("edm", "vp", "ve")


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
    return (x - denoised) / _expand(sigma, x)


def eps_to_denoiser(eps, x, sigma):
    return x - _expand(sigma, x) * eps


def score_fn_from_denoiser(denoise_fn: Callable) -> Callable:
    """(x, sigma, labels) -> score, from a denoiser of the same signature."""
    return lambda x, sigma, labels=None: denoiser_to_score(denoise_fn(x, sigma, labels), x, sigma)


def denoiser_from_score_fn(score_fn: Callable) -> Callable:
    """(x, sigma, labels) -> D, from a score function of the same signature."""
    return lambda x, sigma, labels=None: score_to_denoiser(score_fn(x, sigma, labels), x, sigma)


class Coefficients(NamedTuple):
    c_skip: jnp.ndarray
    c_out: jnp.ndarray
    c_in: jnp.ndarray
    c_noise: jnp.ndarray


def preconditioning(kind: str, sigma, *, sigma_data: float = 0.5, beta_d: float = 19.9,
                    beta_min: float = 0.1, M: int = 1000, epsilon_t: float = 1e-5) -> Coefficients:
    """EDM's Table 1 coefficients for the 'edm', 'vp' and 've' preconditionings."""
    sigma = jnp.asarray(sigma)
    if kind == "edm":
        c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
        c_out = sigma * sigma_data / jnp.sqrt(sigma**2 + sigma_data**2)
        c_in = 1.0 / jnp.sqrt(sigma_data**2 + sigma**2)
        c_noise = jnp.log(sigma) / 4.0
    elif kind == "vp":
        c_skip = jnp.ones_like(sigma)
        c_out = -sigma
        c_in = 1.0 / jnp.sqrt(sigma**2 + 1.0)
        # sigma^-1: t = (sqrt(beta_min^2 + 2 beta_d log(1 + sigma^2)) - beta_min) / beta_d
        t = (jnp.sqrt(beta_min**2 + 2.0 * beta_d * jnp.log1p(sigma**2)) - beta_min) / beta_d
        c_noise = (M - 1) * t
    elif kind == "ve":
        c_skip = jnp.ones_like(sigma)
        c_out = sigma
        c_in = jnp.ones_like(sigma)
        c_noise = jnp.log(0.5 * sigma)
    else:
        raise ValueError(f"unknown preconditioning {kind!r} (field 'precond'); "
                         f"choose one of {list(PRECONDITIONINGS)}")
    return Coefficients(c_skip, c_out, c_in, c_noise)


def precondition(raw_fn: Callable, kind: str, **kwargs) -> Callable:
    """Wraps raw_fn(params, x_in, c_noise, labels) -> F into denoise(params, x, sigma, labels)."""
    preconditioning(kind, 1.0, **kwargs)  # validates `kind` eagerly

    def denoise(params, x, sigma, labels=None):
        c = preconditioning(kind, sigma, **kwargs)
        f = raw_fn(params, _expand(c.c_in, x) * x, c.c_noise, labels)
        return _expand(c.c_skip, x) * x + _expand(c.c_out, x) * f

    return denoise
