"""EDM-G++: EDM's Heun sampler with Discriminator Guidance exactly as DG defines it.

Per step i (sigmas t_i, DG's `edm_sampler` in its generate.py):
  gamma_b = min(S_churn_b / N, sqrt(2) - 1) if S_min <= t_i <= S_max else 0   (per sample b)
  t_hat_b = round_sigma(t_i (1 + gamma_b)),  x_hat = x + sqrt(t_hat^2 - t_i^2) S_noise_b n
  d = (x_hat - D(x_hat; t_hat)) / t_hat - w1 * t_hat * grad_x log(d/(1-d))(x_hat, t_hat)
  x' = x_hat + (t_{i+1} - t_hat) d
  Heun correction on all steps but the last, with the DG term weighted by w2 (DG's own code
  crashes when w2 != 0; here it works, evaluated at (x', t_{i+1})).
The DG term is applied per sample where the VP time of its sigma lies in [time_min, time_max]
(DG skips the whole batch by the batch's smallest tau; the two agree whenever the batch shares
one sigma, i.e. without boosting).

Boosting (DG's `--boosting`): on steps with i % period_weight == 0 the first-order DG term of
samples whose current log ratio is negative is doubled, and on steps with i % period == 0
samples whose previous log ratio was negative get churn S_churn=boost_churn, S_noise=boost_noise
(DG: period 5, period_weight 2, churn 4, noise 1). Outside the window the log ratio counts as
positive, as in DG.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from dg_jax.diffusion.parameterization import denoiser_to_eps
from dg_jax.samplers.edm import added_noise_std, check_sigma_table, check_step_noise, step_normal


def edm_gpp_sample(denoise_fn: Callable, latents, sigmas, dg_corr: Callable, *,
                   weight_1st: float = 2.0, weight_2nd: float = 0.0, boosting: bool = False,
                   labels=None, rng=None, S_churn: float = 0.0, S_min: float = 0.0,
                   S_max: float = float("inf"), S_noise: float = 1.0,
                   round_sigma: Optional[Callable] = None, period: int = 5,
                   period_weight: int = 2, boost_churn: float = 4.0, boost_noise: float = 1.0,
                   noise=None, return_log_ratio: bool = False):
    """Samples with EDM-G++. dg_corr(x, sigma, labels) -> (grad_x log r, log r), as built by
    `dg_correction_fn(..., with_log_ratio=True)`; sigma has shape (B,).

    When the sampler is stochastic (S_churn > 0 or boosting) step i adds
    `added_noise_std(t_i, t_hat, gamma) * S_noise * n_i` with n_i standard normal: drawn from
    `fold_in(rng, i)`, or taken from `noise[i]` (shape (N,) + latents.shape, DG's per-step
    `randn_like` draws, for parity) when given. The added amount is exactly 0 where gamma is 0.

    Returns the samples (and, with `return_log_ratio`, the per-step log ratios, shape (N, B)).
    """
    sigmas = check_sigma_table(sigmas)
    n = len(sigmas) - 1
    stochastic = S_churn > 0 or boosting
    noise = check_step_noise(noise, latents, n, stochastic=stochastic, rng=rng,
                             sampler="EDM-G++", why="S_churn > 0 or boosting")
    rs = round_sigma or (lambda s: s)
    dtype = latents.dtype
    batch = latents.shape[0]
    bshape = (batch,) + (1,) * (latents.ndim - 1)
    max_gamma = math.sqrt(2.0) - 1.0

    def guided_slope(x, t, weight, boost_mask, want_log_ratio=return_log_ratio):
        d = denoiser_to_eps(denoise_fn(x, t, labels).astype(dtype), x, t)
        if weight == 0.0 and not want_log_ratio:  # no discriminator pass at all
            return d, jnp.full((batch,), jnp.inf, dtype)
        grad, log_ratio = dg_corr(x, t, labels)  # log_ratio is +inf outside the window
        log_ratio = log_ratio.astype(dtype)
        scale = jnp.where(boost_mask(log_ratio), 2.0, 1.0).astype(dtype) * weight
        return d - scale.reshape(bshape) * t.reshape(bshape) * grad.astype(dtype), log_ratio

    def step(carry, inputs):
        x, prev_log_ratio = carry
        i, t_cur, t_next, is_last, step_noise = inputs
        churn = jnp.full((batch,), S_churn, dtype)
        noise_scale = jnp.full((batch,), S_noise, dtype)
        if boosting:
            low = (prev_log_ratio < 0) & (i % period == 0)
            churn = jnp.where(low, boost_churn, churn)
            noise_scale = jnp.where(low, boost_noise, noise_scale)
        in_range = (t_cur >= S_min) & (t_cur <= S_max)
        gamma = jnp.where(in_range, jnp.minimum(churn / n, max_gamma), 0.0)
        t_hat = rs(t_cur + gamma * t_cur)
        if stochastic:
            amount = added_noise_std(t_cur, t_hat, gamma) * noise_scale
            x = x + amount.reshape(bshape) * step_normal(noise, step_noise, rng, i, x.shape, dtype)
        boost = ((lambda lr: (lr < 0) & (i % period_weight == 0)) if boosting
                 else (lambda lr: jnp.zeros(lr.shape, bool)))
        d, log_ratio = guided_slope(x, t_hat, weight_1st, boost)
        x_euler = x + (t_next - t_hat).reshape(bshape) * d

        def heun(_):
            t2 = jnp.full((batch,), t_next, dtype)
            d2, _ = guided_slope(x_euler, t2, weight_2nd, lambda lr: jnp.zeros(lr.shape, bool),
                                 want_log_ratio=False)  # DG's gradient again only if weighted
            return x + (t_next - t_hat).reshape(bshape) * (0.5 * d + 0.5 * d2)

        x_next = jax.lax.cond(is_last, lambda _: x_euler, heun, None)
        return (x_next, log_ratio), log_ratio

    table = (jnp.arange(n), jnp.asarray(sigmas[:-1], dtype), jnp.asarray(sigmas[1:], dtype),
             jnp.arange(n) == n - 1, noise if (stochastic and noise is not None) else jnp.zeros(n))
    x0 = latents * jnp.asarray(sigmas[0], dtype)
    init = (x0, jnp.full((batch,), jnp.inf, dtype))
    (x, _), log_ratios = jax.lax.scan(step, init, table)
    return (x, log_ratios) if return_log_ratio else x


def make_edm_gpp_sampler(denoise_fn: Callable, sigmas, correction: Optional[Callable] = None, *,
                         num_classes: int = 0, weight_1st: float = 0.0, weight_2nd: float = 0.0,
                         boosting: bool = False, S_churn: float = 0.0, S_min: float = 0.0,
                         S_max: float = float("inf"), S_noise: float = 1.0,
                         round_sigma: Optional[Callable] = None):
    """`jit(latents, labels, noise_key, return_log_ratio=False)`: EDM Heun (weight_1st 0, or no
    `correction`) or EDM-G++ with `correction(x, sigma, onehot) -> (grad, log_ratio)`.

    denoise_fn(x, sigma, onehot_labels) is the network boundary with its parameters closed
    over; integer `labels` (or None) become one-hot rows of `num_classes`; `noise_key` draws
    the per-step noise of churn and boosting (unused by a deterministic sampler). With
    weight_1st 0 a given `correction` still reports the log ratio along the path (DG's Fig. 7)
    but guides nothing (weight_2nd and boosting are off too)."""
    if correction is None:
        weight_1st = 0.0
        correction = lambda x, sig, y: (jnp.zeros_like(x), jnp.zeros(x.shape[:1]))  # noqa: E731
    if not weight_1st:
        weight_2nd, boosting = 0.0, False

    def run(latents, labels, noise_key, return_log_ratio=False):
        onehot = None if labels is None else jax.nn.one_hot(labels, num_classes)
        return edm_gpp_sample(
            denoise_fn, latents.astype(jnp.float32), sigmas, correction, labels=onehot,
            weight_1st=weight_1st, weight_2nd=weight_2nd, boosting=bool(boosting), rng=noise_key,
            S_churn=S_churn, S_min=S_min, S_max=S_max, S_noise=S_noise, round_sigma=round_sigma,
            return_log_ratio=return_log_ratio)

    return jax.jit(run, static_argnums=3)
