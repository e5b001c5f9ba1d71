"""Improved-DDPM likelihood terms, hybrid training loss and timestep importance sampling.

Follows openai/guided-diffusion: `losses.py` (normal_kl, the tanh approximation of the standard
normal CDF, the discretised Gaussian decoder likelihood), `GaussianDiffusion._vb_terms_bpd`,
`training_losses` (L_simple + L_vb with the 'frozen_out' stop-gradient on the mean, Nichol &
Dhariwal 2021 eq. 16), `_prior_bpd`, `calc_bpd_loop`, and `resample.py`'s
`LossSecondMomentResampler` as a pure state + functions.

Every per-example value is in bits (nats / log 2), averaged over all non-batch axes.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
from flax import struct

from dg_jax.diffusion.iddpm import (
    DiscreteDiffusion,
    mean_flat,
    model_timesteps,
    p_mean_variance_from_output,
    predict_eps_from_xstart,
    q_mean_variance,
    q_posterior_mean_variance,
    q_sample,
    split_model_output,
)

_LOG2 = math.log(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats:
    0.5 (-1 + logvar2 - logvar1 + e^(logvar1 - logvar2) + (mean1 - mean2)^2 e^-logvar2)."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + jnp.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * jnp.exp(-logvar2))


def approx_standard_normal_cdf(x):
    """Phi(x) ~= 0.5 (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    return 0.5 * (1.0 + jnp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x, *, means, log_scales):
    """log P(bin of x) for data on 256 levels in [-1, 1] under N(means, exp(log_scales)^2), nats.

    Bins are x +- 1/255; the edge bins (x < -0.999, x > 0.999) extend to -inf / +inf.
    Probabilities are clamped at 1e-12 before the log.
    """
    if not (x.shape == means.shape == log_scales.shape):
        raise ValueError(f"shapes differ: x {x.shape}, means {means.shape}, "
                         f"log_scales {log_scales.shape}")
    centered_x = x - means
    inv_stdv = jnp.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered_x + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered_x - 1.0 / 255.0))
    log_cdf_plus = jnp.log(jnp.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = jnp.log(jnp.maximum(1.0 - cdf_min, 1e-12))
    log_cdf_delta = jnp.log(jnp.maximum(cdf_plus - cdf_min, 1e-12))
    return jnp.where(x < -0.999, log_cdf_plus,
                     jnp.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


def vb_terms_bpd_from_output(diffusion: DiscreteDiffusion, model_output, x_start, x_t, t, *,
                             clip_denoised: bool = True, channel_axis: int = -1) -> dict:
    """One VLB term per example, in bits (GaussianDiffusion._vb_terms_bpd).

    t > 0: mean_flat KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) / log 2, the posterior taken
    with its clipped log variance; t = 0: the decoder NLL -log P(x_0 | x_1) / log 2.
    Returns {'output': (B,), 'pred_xstart'}.
    """
    true_mean, _, true_log_variance = q_posterior_mean_variance(diffusion, x_start, x_t, t)
    out = p_mean_variance_from_output(diffusion, model_output, x_t, t,
                                      clip_denoised=clip_denoised, channel_axis=channel_axis)
    kl = mean_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"]))
    kl = kl / _LOG2
    decoder_nll = -discretized_gaussian_log_likelihood(
        x_start, means=out["mean"], log_scales=0.5 * out["log_variance"])
    decoder_nll = mean_flat(decoder_nll) / _LOG2
    return {"output": jnp.where(t == 0, decoder_nll, kl), "pred_xstart": out["pred_xstart"]}


def training_losses(diffusion: DiscreteDiffusion, model_fn: Callable, x_start, t, noise, *,
                    channel_axis: int = -1) -> dict:
    """guided-diffusion's per-example training losses at process indices t (shape (B,)).

    model_fn(x_t, model_timesteps(t)) -> output. x_t = q_sample(x_start, t, noise).
    - 'kl' / 'rescaled_kl': loss = VLB term (times T for rescaled_kl), no clipping.
    - 'mse' / 'rescaled_mse': mse = mean_flat((target - mean output)^2) with target noise,
      x_start or the posterior mean by model_mean_type; a learned variance adds
      vb = VLB term of [stop_gradient(mean output), variance output] (the variance learns from
      the bound without moving the mean), times T / 1000 for rescaled_mse; loss = mse (+ vb).
    Returns a dict of (B,) arrays: 'loss' and, for the mse types, 'mse' (and 'vb').
    """
    x_t = q_sample(diffusion, x_start, t, noise)
    model_output = model_fn(x_t, model_timesteps(diffusion, t))
    terms = {}
    lt = diffusion.loss_type
    if lt in ("kl", "rescaled_kl"):
        terms["loss"] = vb_terms_bpd_from_output(
            diffusion, model_output, x_start, x_t, t, clip_denoised=False,
            channel_axis=channel_axis)["output"]
        if lt == "rescaled_kl":
            terms["loss"] = terms["loss"] * diffusion.num_timesteps
        return terms

    mean_out, var_out = split_model_output(diffusion, model_output, x_t, channel_axis)
    if var_out is not None:
        frozen_out = jnp.concatenate([jax.lax.stop_gradient(mean_out), var_out],
                                     axis=channel_axis)
        terms["vb"] = vb_terms_bpd_from_output(
            diffusion, frozen_out, x_start, x_t, t, clip_denoised=False,
            channel_axis=channel_axis)["output"]
        if lt == "rescaled_mse":
            # divided by 1000 for equivalence with the initial implementation
            terms["vb"] = terms["vb"] * (diffusion.num_timesteps / 1000.0)
    mt = diffusion.model_mean_type
    if mt == "previous_x":
        target = q_posterior_mean_variance(diffusion, x_start, x_t, t)[0]
    elif mt == "start_x":
        target = x_start
    else:
        target = noise
    terms["mse"] = mean_flat((target - mean_out) ** 2)
    terms["loss"] = terms["mse"] + terms["vb"] if "vb" in terms else terms["mse"]
    return terms


def prior_bpd(diffusion: DiscreteDiffusion, x_start):
    """KL(q(x_T | x_0) || N(0, I)) per example, in bits (_prior_bpd)."""
    t = jnp.full((x_start.shape[0],), diffusion.num_timesteps - 1, jnp.int32)
    qt_mean, _, qt_log_variance = q_mean_variance(diffusion, x_start, t)
    return mean_flat(normal_kl(qt_mean, qt_log_variance, 0.0, 0.0)) / _LOG2


def calc_bpd_loop(diffusion: DiscreteDiffusion, model_fn: Callable, x_start, rng, *,
                  clip_denoised: bool = True, channel_axis: int = -1) -> dict:
    """The full VLB per example (calc_bpd_loop), a `jax.lax.scan` over t = T-1 .. 0.

    Returns 'total_bpd' (B,), 'prior_bpd' (B,) and 'vb', 'xstart_mse', 'mse' of shape (B, T)
    in the reference's loop order: column j holds timestep T-1-j.
    """
    batch = x_start.shape[0]
    steps = jnp.arange(diffusion.num_timesteps - 1, -1, -1)
    keys = jax.random.split(rng, diffusion.num_timesteps)

    def body(_, inp):
        i, key = inp
        t = jnp.full((batch,), i)
        noise = jax.random.normal(key, x_start.shape, x_start.dtype)
        x_t = q_sample(diffusion, x_start, t, noise)
        out = vb_terms_bpd_from_output(
            diffusion, model_fn(x_t, model_timesteps(diffusion, t)), x_start, x_t, t,
            clip_denoised=clip_denoised, channel_axis=channel_axis)
        eps = predict_eps_from_xstart(diffusion, x_t, t, out["pred_xstart"])
        return None, (out["output"], mean_flat((out["pred_xstart"] - x_start) ** 2),
                      mean_flat((eps - noise) ** 2))

    _, (vb, xstart_mse, mse) = jax.lax.scan(body, None, (steps, keys))
    vb, xstart_mse, mse = vb.T, xstart_mse.T, mse.T
    prior = prior_bpd(diffusion, x_start)
    return {"total_bpd": vb.sum(axis=1) + prior, "prior_bpd": prior, "vb": vb,
            "xstart_mse": xstart_mse, "mse": mse}


# ----------------------------------------------------------------------------- t sampling

@struct.dataclass
class LossSecondMomentState:
    """resample.LossSecondMomentResampler's state: the last `history_per_term` losses per t."""

    loss_history: jnp.ndarray  # (T, history_per_term)
    loss_counts: jnp.ndarray  # (T,) int
    uniform_prob: float = struct.field(pytree_node=False, default=0.001)


def init_loss_second_moment(num_timesteps: int, history_per_term: int = 10,
                            uniform_prob: float = 0.001) -> LossSecondMomentState:
    """An empty history (weights stay uniform until every t has `history_per_term` losses)."""
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return LossSecondMomentState(
        loss_history=jnp.zeros((num_timesteps, history_per_term), dtype),
        loss_counts=jnp.zeros((num_timesteps,), jnp.int32),
        uniform_prob=float(uniform_prob))


def loss_second_moment_weights(state: LossSecondMomentState):
    """Uniform until warmed up; then w_t = sqrt(mean(history_t^2)), normalised, mixed with the
    uniform distribution: w (1 - uniform_prob) + uniform_prob / T."""
    num_t, hist = state.loss_history.shape
    w = jnp.sqrt(jnp.mean(state.loss_history ** 2, axis=-1))
    w = w / jnp.sum(w)
    w = w * (1 - state.uniform_prob) + state.uniform_prob / num_t
    warmed_up = jnp.all(state.loss_counts == hist)
    return jnp.where(warmed_up, w, jnp.ones_like(w))


def update_loss_second_moment(state: LossSecondMomentState, ts, losses) -> LossSecondMomentState:
    """Appends losses[i] to t = ts[i]'s history, in order (a full history shifts out its
    oldest entry), as update_with_all_losses does. Pass the losses of every device."""
    hist_len = state.loss_history.shape[1]

    def body(carry, inp):
        hist, counts = carry
        t, loss = inp
        loss = loss.astype(hist.dtype)
        row, count = hist[t], counts[t]
        full = count == hist_len
        shifted = jnp.concatenate([row[1:], loss[None]])
        inserted = row.at[jnp.minimum(count, hist_len - 1)].set(loss)
        hist = hist.at[t].set(jnp.where(full, shifted, inserted))
        counts = counts.at[t].add(jnp.where(full, 0, 1).astype(counts.dtype))
        return (hist, counts), None

    (hist, counts), _ = jax.lax.scan(body, (state.loss_history, state.loss_counts),
                                     (jnp.asarray(ts), jnp.asarray(losses)))
    return state.replace(loss_history=hist, loss_counts=counts)


def sample_timesteps(rng, weights, batch_size: int):
    """Importance-samples t with p = w / sum(w) (ScheduleSampler.sample): returns
    (t of shape (batch_size,), loss weights 1 / (T p_t)) so the weighted loss is unbiased."""
    p = weights / jnp.sum(weights)
    indices = jax.random.choice(rng, p.shape[0], (batch_size,), p=p)
    return indices, (1.0 / (p.shape[0] * p[indices])).astype(jnp.float32)


def uniform_weights(diffusion: DiscreteDiffusion):
    """UniformSampler's weights: ones of shape (T,)."""
    return jnp.ones((diffusion.num_timesteps,))


def schedule_weights(name: str, diffusion: DiscreteDiffusion,
                     state: Optional[LossSecondMomentState] = None):
    """create_named_schedule_sampler's weights: 'uniform' or 'loss-second-moment' (state)."""
    if name == "uniform":
        return uniform_weights(diffusion)
    if name == "loss-second-moment":
        if state is None:
            raise ValueError("'loss-second-moment' needs its LossSecondMomentState")
        return loss_second_moment_weights(state)
    raise ValueError(f"unknown schedule sampler {name!r}; expected 'uniform' or "
                     "'loss-second-moment'")
