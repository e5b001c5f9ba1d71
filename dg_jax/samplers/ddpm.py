"""Ancestral (DDPM) and DDIM sampling of an improved-DDPM process, guided through a `cond_fn`.

Follows guided-diffusion's `p_sample_loop` / `ddim_sample_loop` as a `jax.lax.scan` over the
(respaced) process indices t = T-1 .. 0, so compile time does not grow with the step count. As
respace's `_WrappedModel` does, the network and the cond_fn are called with the ORIGINAL
timestep `model_timesteps(diffusion, t)` (timestep_map[t], rescaled to 0..1000 if the process
says so), while the tables are indexed by t.

- model_fn(x, t_model, y) -> model output (2C channels on `channel_axis` for learned variances).
- cond_fn(x, t_model, y) -> a scaled grad_x log p(y | x_t); the samplers do not know which
  guidance it is (classifier guidance: `dg_jax.guidance.cfg.classifier_guidance_cond_fn`; DG:
  `dg_jax.guidance.discriminator.dg_cond_fn`; several add with `sum_cond_fns`).
- DDPM: x_{t-1} = mean (+ variance * cond_fn, `condition_mean`) + [t > 0] exp(logvar / 2) z,
  z drawn from rng or given per step (`step_noise`).
- DDIM (Song et al. eq. 12): eps' = eps - sqrt(1 - abar_t) cond_fn (`condition_score`),
  x_{t-1} = sqrt(abar_{t-1}) x0 + sqrt(1 - abar_{t-1} - sigma^2) eps + [t > 0] sigma z,
  sigma = eta sqrt((1 - abar_{t-1}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t-1}).

The state keeps the dtype of `noise`; model outputs and guidance gradients are cast to it.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from dg_jax.diffusion.iddpm import (
    DiscreteDiffusion,
    condition_mean,
    condition_score,
    extract,
    model_timesteps,
    p_mean_variance_from_output,
    predict_eps_from_xstart,
)
from dg_jax.samplers.edm import check_step_noise


def _step_inputs(diffusion: DiscreteDiffusion, rng, needs_noise: bool):
    n = diffusion.num_timesteps
    indices = jnp.arange(n - 1, -1, -1, dtype=jnp.int32)
    if needs_noise:
        if rng is None:
            raise ValueError("this sampler draws noise: pass rng")
        return indices, jax.random.split(rng, n)
    return indices, None


def _run(step, x, xs, return_trajectory: bool):
    def body(state, inp):
        new = step(state, *inp)
        return new, (new if return_trajectory else None)

    final, traj = jax.lax.scan(body, x, xs)
    return (final, traj) if return_trajectory else final


def _model_outputs(diffusion, model_fn, cond_fn, x, i, y, **pmv_kwargs):
    """One step's network evaluation at index i: (t, p_mean_variance, cond_fn's gradient or
    None), the model output and gradient cast to x's dtype."""
    t = jnp.full((x.shape[0],), i, jnp.int32)
    t_model = model_timesteps(diffusion, t)
    out = p_mean_variance_from_output(diffusion, model_fn(x, t_model, y).astype(x.dtype), x, t,
                                      **pmv_kwargs)
    grad = None if cond_fn is None else cond_fn(x, t_model, y).astype(x.dtype)
    return t, out, grad


def ddpm_sample(diffusion: DiscreteDiffusion, model_fn: Callable, noise, *, y=None, rng=None,
                clip_denoised: bool = True, denoised_fn: Optional[Callable] = None,
                cond_fn: Optional[Callable] = None, channel_axis: int = -1,
                return_trajectory: bool = False, step_noise=None):
    """Ancestral sampling from x_T = noise (p_sample_loop): returns x_0, and with
    `return_trajectory` also the state after every step, shape (T,) + noise.shape.

    Scan step k (process index T-1-k) draws z_k = normal(split(rng, T)[k]), or takes
    z_k = step_noise[k] when `step_noise` (shape (T,) + noise.shape, e.g. the official code's
    per-step `randn_like` draws, for parity) is given; rng is then not needed. The last step's
    draw (index 0) is masked out, as in guided-diffusion.
    """
    dtype = noise.dtype
    if step_noise is None:
        indices, draws = _step_inputs(diffusion, rng, True)
    else:
        draws = check_step_noise(step_noise, noise, diffusion.num_timesteps, stochastic=True,
                                 rng=rng, sampler="ddpm_sample", why="")
        indices, _ = _step_inputs(diffusion, None, False)
    pmv_kwargs = dict(clip_denoised=clip_denoised, denoised_fn=denoised_fn,
                      channel_axis=channel_axis)

    def step(x, i, draw):
        _, out, grad = _model_outputs(diffusion, model_fn, cond_fn, x, i, y, **pmv_kwargs)
        if grad is not None:
            out = condition_mean(diffusion, grad, out)
        z = (jax.random.normal(draw, x.shape, dtype) if step_noise is None
             else draw.astype(dtype))
        nonzero = (i != 0).astype(dtype)
        return (out["mean"] + nonzero * jnp.exp(0.5 * out["log_variance"]) * z).astype(dtype)

    return _run(step, noise, (indices, draws), return_trajectory)


def ddim_sample(diffusion: DiscreteDiffusion, model_fn: Callable, noise, *, y=None,
                eta: float = 0.0, rng=None, clip_denoised: bool = True,
                denoised_fn: Optional[Callable] = None, cond_fn: Optional[Callable] = None,
                channel_axis: int = -1, return_trajectory: bool = False):
    """DDIM sampling from x_T = noise (ddim_sample_loop); `rng` is needed only when eta != 0.
    Returns x_0, and with `return_trajectory` also every step's state, (T,) + noise.shape."""
    dtype = noise.dtype
    stochastic = not (isinstance(eta, (int, float)) and eta == 0)
    indices, keys = _step_inputs(diffusion, rng, stochastic)
    eta = jnp.asarray(eta, dtype)
    pmv_kwargs = dict(clip_denoised=clip_denoised, denoised_fn=denoised_fn,
                      channel_axis=channel_axis)

    def step(x, i, key=None):
        t, out, grad = _model_outputs(diffusion, model_fn, cond_fn, x, i, y, **pmv_kwargs)
        if grad is not None:
            out = condition_score(diffusion, grad, out, x, t)
        eps = predict_eps_from_xstart(diffusion, x, t, out["pred_xstart"])
        alpha_bar = extract(diffusion.alphas_cumprod, t, x)
        alpha_bar_prev = extract(diffusion.alphas_cumprod_prev, t, x)
        sigma = (eta * jnp.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar))
                 * jnp.sqrt(1 - alpha_bar / alpha_bar_prev))
        mean_pred = (out["pred_xstart"] * jnp.sqrt(alpha_bar_prev)
                     + jnp.sqrt(1 - alpha_bar_prev - sigma ** 2) * eps)
        if key is None:
            return mean_pred.astype(dtype)
        z = jax.random.normal(key, x.shape, dtype)
        nonzero = (i != 0).astype(dtype)
        return (mean_pred + nonzero * sigma * z).astype(dtype)

    xs = (indices, keys) if stochastic else (indices,)
    return _run(step, noise, xs, return_trajectory)
