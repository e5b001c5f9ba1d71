"""EDM's deterministic/stochastic Heun sampler and Euler sampler (Karras et al. 2022, Alg. 2),
integrated with `jax.lax.scan`, so compile time does not depend on the number of steps.

The sampler integrates dx/dsigma = (x - D(x; sigma)) / sigma from x_0 = latents * sigmas[0]
over the step table `sigmas` (decreasing, last entry 0). Heun's second-order correction is
applied on every step but the last (whose target sigma is 0), exactly as EDM does.

Guidance enters as a transform of the denoiser (see dg_jax/guidance): `guidance` is applied to
the first-order evaluation and, unless `second_order_guidance` says otherwise, to the Heun
correction as well; DG's 1st-order-only EDM-G++ passes `second_order_guidance=None`.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.diffusion.parameterization import denoiser_to_eps

SAMPLER_NAMES = ("heun", "euler")
_SAME = "same"


def edm_sigma_steps(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                    rho: float = 7.0, round_sigma: Optional[Callable] = None) -> np.ndarray:
    """EDM's rho-spaced noise levels in float64, followed by sigma = 0: shape (num_steps + 1,)."""
    if num_steps < 1:
        raise ValueError(f"num_steps={num_steps} must be at least 1 (field 'sampler.num_steps')")
    i = np.arange(num_steps, dtype=np.float64)
    denom = max(num_steps - 1, 1)
    t = (sigma_max ** (1 / rho) + i / denom * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    if round_sigma is not None:
        t = np.asarray(round_sigma(t), np.float64)
    return np.concatenate([t, np.zeros(1)])


def denoiser_sigma_steps(denoiser, num_steps: int, sigma_min: float = 0.002,
                         sigma_max: float = 80.0, rho: float = 7.0) -> np.ndarray:
    """EDM's sigma table clamped to the range a preconditioned denoiser supports (its
    `sigma_min`, `sigma_max` and `round_sigma`, as EDM's sampler reads them from the net)."""
    return edm_sigma_steps(num_steps, max(sigma_min, denoiser.sigma_min),
                           min(sigma_max, denoiser.sigma_max), rho,
                           round_sigma=denoiser.round_sigma)


def churn_gammas(sigmas: np.ndarray, S_churn: float, S_min: float, S_max: float) -> np.ndarray:
    """Per-step gamma_i = min(S_churn / N, sqrt(2) - 1) when S_min <= sigma_i <= S_max, else 0."""
    n = len(sigmas) - 1
    g = min(S_churn / n, math.sqrt(2.0) - 1.0)
    cur = np.asarray(sigmas[:-1], np.float64)
    return np.where((cur >= S_min) & (cur <= S_max), g, 0.0)


def added_noise_std(t_cur, t_hat, gamma):
    """sqrt(t_hat^2 - t_cur^2), the std of the noise that raises sigma from t_cur to t_hat, with
    exactly 0 where gamma is 0. As a plain difference of squares it is not: compilers fuse
    `a*a - b*b` into a fused multiply-add, whose result for a == b is the rounding error of b*b,
    positive or negative, so the square root gives noise or NaN. Works on NumPy or JAX arrays."""
    xp = jnp if any(isinstance(a, jax.Array) for a in (t_cur, t_hat, gamma)) else np
    diff = xp.maximum(t_hat * t_hat - t_cur * t_cur, 0.0)
    return xp.where(gamma > 0, xp.sqrt(diff), 0.0)


def check_sigma_table(sigmas) -> np.ndarray:
    """`sigmas` as a float64 host array, checked to be 1-D, at least 2 long and ending with 0."""
    sigmas = np.asarray(sigmas, np.float64)
    if sigmas.ndim != 1 or len(sigmas) < 2 or sigmas[-1] != 0.0:
        raise ValueError("sigmas must be a 1-D table ending with 0 (see edm_sigma_steps)")
    return sigmas


def check_step_noise(noise, latents, n: int, *, stochastic: bool, rng, sampler: str, why: str):
    """The given per-step standard normal draws as an array, checked to have shape
    (n,) + latents.shape, or None; a `stochastic` sampler (made so by `why`) needs rng without."""
    if noise is not None:
        noise = jnp.asarray(noise)
        if noise.shape != (n,) + tuple(latents.shape):
            raise ValueError(f"noise has shape {tuple(noise.shape)}; {sampler} with {n} steps needs "
                             f"(num_steps,) + latents.shape = {(n,) + tuple(latents.shape)}")
    elif stochastic and rng is None:
        raise ValueError(f"{why} makes {sampler} stochastic: pass rng (or noise)")
    return noise


def step_normal(noise, step_noise, rng, i, shape, dtype):
    """Step i's standard normal draw: `step_noise` (= noise[i]) when `noise` was given, else drawn
    from fold_in(rng, i)."""
    if noise is not None:
        return step_noise.astype(dtype)
    return jax.random.normal(jax.random.fold_in(rng, i), shape, dtype)


def heun_sample(denoise_fn: Callable, latents, sigmas, *, labels=None, rng=None,
                S_churn: float = 0.0, S_min: float = 0.0, S_max: float = float("inf"),
                S_noise: float = 1.0, guidance: Optional[Callable] = None,
                second_order_guidance=_SAME, second_order_denoise_fn: Optional[Callable] = None,
                euler: bool = False, round_sigma: Optional[Callable] = None,
                noise=None, return_trajectory: bool = False):
    """Samples with EDM's Heun (or Euler, `euler=True`) method.

    denoise_fn(x, sigma, labels) -> D, with sigma of shape (B,). `sigmas` is a host array (see
    `edm_sigma_steps`). The state keeps the dtype of `latents` (float64 latents reproduce EDM's
    float64 integration); denoiser outputs are cast to it. `rng` is needed only when S_churn > 0;
    `noise` (shape (N,) + latents.shape) gives the per-step standard normal draws instead.
    With `return_trajectory`, also returns the state after every step, shape (N,) + x.shape.
    """
    sigmas = check_sigma_table(sigmas)
    gammas = churn_gammas(sigmas, S_churn, S_min, S_max)
    stochastic = bool(np.any(gammas > 0))
    n = len(sigmas) - 1
    noise = check_step_noise(noise, latents, n, stochastic=stochastic, rng=rng,
                             sampler="the sampler", why="S_churn > 0")
    rs = round_sigma or (lambda s: s)
    t_hat = np.asarray(rs(sigmas[:-1] * (1.0 + gammas)), np.float64)
    noise_std = added_noise_std(sigmas[:-1], t_hat, gammas) * S_noise  # host float64: exact 0s

    first = guidance(denoise_fn) if guidance is not None else denoise_fn
    base2 = second_order_denoise_fn or denoise_fn
    if second_order_guidance is _SAME:
        second_order_guidance = guidance
    second = second_order_guidance(base2) if second_order_guidance is not None else base2

    dtype = latents.dtype
    batch = latents.shape[0]

    def slope(fn, x, sigma):
        sig = jnp.full((batch,), sigma, dtype)
        return denoiser_to_eps(fn(x, sig, labels).astype(dtype), x, sigma)

    def add_noise(x, i, std, step_noise):
        if not stochastic:
            return x
        return x + std * step_normal(noise, step_noise, rng, i, x.shape, dtype)

    def step(x, inputs):
        i, t_h, t_next, std, step_noise = inputs
        x = add_noise(x, i, std, step_noise)
        d = slope(first, x, t_h)
        x_next = x + (t_next - t_h) * d
        if not euler:
            d2 = slope(second, x_next, t_next)
            x_next = x + (t_next - t_h) * (0.5 * d + 0.5 * d2)
        return x_next, (x_next if return_trajectory else None)

    def last_step(x, i, t_h, t_next, std, step_noise):
        x = add_noise(x, i, std, step_noise)
        return x + (t_next - t_h) * slope(first, x, t_h)

    table = (jnp.arange(n), jnp.asarray(t_hat, dtype), jnp.asarray(sigmas[1:], dtype),
             jnp.asarray(noise_std, dtype),
             noise if (stochastic and noise is not None) else jnp.zeros(n))
    x = latents * jnp.asarray(sigmas[0], dtype)
    head = jax.tree_util.tree_map(lambda a: a[:-1], table)
    x, traj = jax.lax.scan(step, x, head)
    x = last_step(x, *jax.tree_util.tree_map(lambda a: a[-1], table))
    if not return_trajectory:
        return x
    traj = jnp.concatenate([traj, x[None]], axis=0)
    return x, traj


def euler_sample(denoise_fn: Callable, latents, sigmas, **kwargs):
    """First-order (Euler) EDM sampler; same arguments as `heun_sample`."""
    return heun_sample(denoise_fn, latents, sigmas, euler=True, **kwargs)


def get_sampler(name: str) -> Callable:
    """Sampler by name ('heun' or 'euler'); the name comes from the field 'sampler.name'."""
    if name == "heun":
        return heun_sample
    if name == "euler":
        return euler_sample
    raise ValueError(f"unknown sampler name {name!r} (field 'sampler.name'); "
                     f"choose one of {list(SAMPLER_NAMES)}")
