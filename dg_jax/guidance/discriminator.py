"""Discriminator Guidance (Kim et al., ICML 2023) as a score / denoiser transform.

A discriminator d(x_t, t) trained to tell diffused data from diffused model samples estimates
d / (1 - d) = p_data^t / p_model^t, so its log-ratio gradient corrects the model score:
    s_guided(x; sigma) = s(x; sigma) + w * grad_x log(d / (1 - d)).
log(d / (1 - d)) is the discriminator's logit, so the correction is `jax.grad` of the logit
(stable for any logit). DG's code instead clips d = sigmoid(logit) to [1e-5, 1 - 1e-5] first;
`clip_probability=True` reproduces that for exact parity (it zeroes the gradient where
|logit| > log(1e5 - 1)).

The discriminator is trained on the VP process, while samplers run on the EDM variable
x = x_0 + sigma * eps. As in DG, it is evaluated at x_vp = mean(tau) x with tau the VP time of
sigma; by the chain rule grad_x = mean(tau) * grad_{x_vp}. The correction is applied only where
time_min <= tau <= time_max; when no sample of the batch is in the window the discriminator
is not evaluated at all.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.broadcast import expand_like, per_example
from dg_jax.diffusion.processes import VP, sigma_to_vp

LOGIT_CLIP_P = 1e-5


def validate_window(time_min: float, time_max: float, field: str = "dg") -> None:
    """Raises naming the field if the time window is not inside [0, 1] with min <= max."""
    for name, value in (("time_min", time_min), ("time_max", time_max)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{field}.{name}={value} is outside [0, 1]: the DG time window is "
                             "given in VP time tau")
    if float(time_min) > float(time_max):
        raise ValueError(f"{field}.time_min={time_min} exceeds {field}.time_max={time_max}")


def probability_clip(clip_probability) -> Optional[tuple[float, float]]:
    """The (lo, hi) bounds for d that `clip_probability` asks for: None for False/None, DG's
    [1e-5, 1 - 1e-5] for True, else the given pair (e.g. DG_imagenet's `d_clip`)."""
    if clip_probability is None or clip_probability is False:
        return None
    if clip_probability is True:
        return LOGIT_CLIP_P, 1.0 - LOGIT_CLIP_P
    lo, hi = (float(v) for v in clip_probability)
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(f"probability clip {clip_probability!r} must satisfy 0 < lo < hi < 1")
    return lo, hi


def log_ratio_from_logit(logit, clip_probability=False):
    """log(d / (1 - d)) from the logit; DG's clipped form when `clip_probability` (True for
    [1e-5, 1 - 1e-5], or a (lo, hi) pair): d = clip(sigmoid(logit), lo, hi), so the gradient
    is zero where d is clipped."""
    bounds = probability_clip(clip_probability)
    if bounds is None:
        return logit
    d = jnp.clip(jax.nn.sigmoid(logit), *bounds)
    return jnp.log(d / (1.0 - d))


def dg_correction_fn(logit_fn: Callable, *, process: VP = VP(), time_min: float = 0.0,
                     time_max: float = 1.0, clip_probability: bool = False,
                     with_log_ratio: bool = False, input_dtype=None) -> Callable:
    """Returns corr(x, sigma, labels) = grad_x log(d/(1-d)) at the EDM-scale x, zero outside the
    window. logit_fn(x_vp, tau, labels) -> logit of shape (B,). With `with_log_ratio`, corr
    returns (grad, log_ratio) with log_ratio = +inf outside the window (DG marks those samples
    with 1e7: "not below zero", so boosting leaves them alone).

    As DG's `get_grad_log_ratio`, the gradient is taken with respect to the VP input
    x_vp = mean(tau) x and multiplied by mean(tau) afterwards; the VP map (tau, mean, x_vp) is
    computed in x's precision and x_vp is cast to `input_dtype` (default: x's dtype) before the
    discriminator. With float64 x (jax_enable_x64) and input_dtype=float32 this is DG's exact
    numerical path: float64 map, float32 network, float64 tau into the time embedding.
    """
    validate_window(time_min, time_max)

    def per_batch_log_ratio(x_vp, tau, labels):
        log_ratio = log_ratio_from_logit(logit_fn(x_vp, tau, labels), clip_probability)
        return jnp.sum(log_ratio), log_ratio

    grad_fn = jax.grad(per_batch_log_ratio, has_aux=True)

    def corr(x, sigma, labels=None):
        sigma = per_example(sigma, x.shape[0], x.dtype)
        x_vp, tau, mean = sigma_to_vp(sigma, x, process)
        inside = (tau >= time_min) & (tau <= time_max)

        def active(_):
            grad_vp, log_ratio = grad_fn(x_vp.astype(input_dtype or x.dtype), tau, labels)
            mask = inside.reshape((-1,) + (1,) * (x.ndim - 1))
            grad = mean.reshape(mask.shape).astype(x.dtype) * grad_vp.astype(x.dtype)
            return (jnp.where(mask, grad, 0.0),
                    jnp.where(inside, log_ratio, jnp.inf).astype(x.dtype))

        def idle(_):
            return jnp.zeros_like(x), jnp.full(x.shape[:1], jnp.inf, x.dtype)

        grad, log_ratio = jax.lax.cond(jnp.any(inside), active, idle, None)
        return (grad, log_ratio) if with_log_ratio else grad

    return corr


def guide_score(score_fn: Callable, corr: Callable, weight=1.0) -> Callable:
    """score'(x, sigma, labels) = score + weight * corr. `weight` may be a function of sigma."""
    def guided(x, sigma, labels=None):
        w = weight(sigma) if callable(weight) else weight
        return score_fn(x, sigma, labels) + expand_like(w, x, x.dtype) * corr(x, sigma, labels)

    return guided


def guide_denoiser(denoise_fn: Callable, corr: Callable, weight=1.0) -> Callable:
    """D'(x, sigma, labels) = D + weight * sigma^2 * corr (the same correction in denoiser form)."""
    def guided(x, sigma, labels=None):
        w = weight(sigma) if callable(weight) else weight
        s2 = expand_like(jnp.asarray(sigma, x.dtype) ** 2, x)
        step = expand_like(w, x, x.dtype) * s2
        return denoise_fn(x, sigma, labels) + step * corr(x, sigma, labels)

    return guided


def exact_log_ratio_correction(log_ratio_fn: Callable) -> Callable:
    """Oracle corr from an analytic log(p_data^t / p_model^t)(x, sigma): its jax.grad in x."""
    def corr(x, sigma, labels=None):
        return jax.grad(lambda y: jnp.sum(log_ratio_fn(y, sigma)))(x)

    return corr


Transform = Callable[[Callable], Callable]


def discriminator_guidance(logit_fn: Callable, weight=1.0, *, time_min: float = 0.0,
                           time_max: float = 1.0, clip_probability: bool = False,
                           process: Optional[VP] = None) -> Transform:
    """The DG transform: denoise_fn -> guided denoise_fn (for samplers' `guidance=` argument)."""
    corr = dg_correction_fn(logit_fn, process=process or VP(), time_min=time_min,
                            time_max=time_max, clip_probability=clip_probability)
    return lambda denoise_fn: guide_denoiser(denoise_fn, corr, weight)


def dg_cond_fn(logit_fn: Callable, weight=1.0, *, time_min: float = 0.0, time_max: float = 1.0,
               clip_probability=False, timestep_scale: float = 999.0,
               min_exclusive: bool = False) -> Callable:
    """DG for improved-DDPM samplers (DDPM-G++ / DDIM-G++), in their `cond_fn` form:
    cond_fn(x_t, t_model, y) = w(tau) * grad_x log(d/(1-d))(x_t, tau), tau = t_model / 999.

    x_t of a DDPM is already on the VP scale, so the discriminator sees it directly; tau follows
    DG's classifier convention (it multiplies tau by 999 before its time embedding, so a model
    timestep t is tau = t / 999, computed in float32 as DG's `t / 999`). The samplers turn it
    into a mean shift (DDPM) or an eps shift (DDIM), exactly like classifier guidance, and
    cond_fns add (`sum_cond_fns`). `weight` may be a function of tau (the paper's
    time-dependent w_DG(t)). The window is time_min <= tau <= time_max, or
    time_min < tau <= time_max with `min_exclusive` (DG_imagenet's `t > time_min`, see
    `latent_dg_cond_fn`). `clip_probability`: see `log_ratio_from_logit`.
    """
    validate_window(time_min, time_max)
    probability_clip(clip_probability)

    def cond_fn(x, t_model, y=None):
        tau = jnp.asarray(t_model, jnp.float32) / timestep_scale
        above = (tau > time_min) if min_exclusive else (tau >= time_min)
        inside = above & (tau <= time_max)

        def total(x_in):
            return jnp.sum(log_ratio_from_logit(logit_fn(x_in, tau, y), clip_probability))

        grad = jax.grad(total)(x)
        w = weight(tau) if callable(weight) else jnp.full(tau.shape, weight)
        w = jnp.where(inside, w, 0.0).reshape((-1,) + (1,) * (x.ndim - 1))
        return (w * grad).astype(x.dtype)

    return cond_fn


def latent_dg_cond_fn(logit_fn: Callable, dg_scale: float, time_min: int, *,
                      d_clip=(LOGIT_CLIP_P, 1.0 - LOGIT_CLIP_P), timestep_scale: float = 999.0,
                      cond_rows: Optional[int] = None) -> Callable:
    """DiT-G++'s DG cond_fn (DG_imagenet `sample.py`), built on `dg_cond_fn`:

        cond_fn(x, t, y) = dg_scale * grad_x sum log(d / (1 - d)),  d = clip(D(x, t/999, y), d_clip)

    where the ORIGINAL integer timestep t is strictly above `time_min` (0 <= time_min <= 999),
    else 0. `logit_fn(x, tau, y)` is the discriminator's logit (e.g. `DGDiscriminator.bind(
    params)`); d is clipped as the official code clips it, so the gradient is zero there.
    `dg_scale` may be a traced scalar (one compiled sampler for several scales).

    On our own sampler's B rows the result is the gradient for those rows. With `cond_rows` = B
    the cond_fn takes the official doubled batch (2B rows, x[B:] / y[B:] the null-label copies):
    it evaluates the first B rows and returns cat(g, g), as `sample.py` does. The time window is
    decided per row (`sample.py` decides it by t[0]; the samplers give every row the same t).
    """
    scale = float(timestep_scale)
    # tau's lower bound as float32(time_min) / float32(999): exactly the float32 value of tau at
    # t = time_min, so the strict comparison on tau is the strict one on the integer timestep.
    tau_min = float(np.float32(time_min) / np.float32(scale))
    base = dg_cond_fn(logit_fn, dg_scale, time_min=tau_min, time_max=1.0,
                      clip_probability=tuple(d_clip), timestep_scale=scale, min_exclusive=True)
    if cond_rows is None:
        return base
    b = int(cond_rows)

    def doubled(x, t, y=None):
        if x.shape[0] != 2 * b:
            raise ValueError(f"cond_rows={b} expects the doubled batch of {2 * b} rows, "
                             f"got {x.shape[0]}")
        g = base(x[:b], jnp.asarray(t)[:b], None if y is None else jnp.asarray(y)[:b])
        return jnp.concatenate([g, g], axis=0)

    return doubled


def sum_cond_fns(*fns: Optional[Callable]) -> Optional[Callable]:
    """cond_fn(x, t, y) = sum of the given cond_fns (e.g. DG + classifier guidance)."""
    fns = [f for f in fns if f is not None]
    if not fns:
        return None
    return lambda x, t, y=None: sum(f(x, t, y) for f in fns)
