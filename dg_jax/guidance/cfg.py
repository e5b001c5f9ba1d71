"""Classifier-free guidance (Ho & Salimans 2022) and time-dependent guidance weights.

Weight convention (as in the CFG paper, and GLIDE's `guidance_scale = 1 + w`):

    eps_guided(x, t, y) = (1 + w) eps(x, t, y) - w eps(x, t, null)

so w = 0 is the purely conditional model, w = -1 the purely unconditional one, and w > 0
sharpens towards the class. The null label is the extra class index `num_classes` that the
model was trained on when its label was dropped (`dg_jax.train.iddpm_train.drop_labels`).

- eps space (improved-DDPM models, `cfg_model_fn`): the formula is applied to the eps (or x0)
  half of the output; a learned-range variance half is taken from the conditional evaluation
  (GLIDE's convention), so `ddpm_sample` / `ddim_sample` use it unchanged.
- denoiser space (EDM models, `cfg_denoiser`): D_guided = (1 + w) D(x, sigma, y) - w D(x, sigma,
  null). Because eps = (x - D) / sigma is affine in D with coefficients that do not depend on the
  label, this is exactly the eps-space rule; the null label of an EDM network is the all-zero
  one-hot row (EDM's own label dropout zeroes the row).

`w` may be a number or a function of the model timestep (shape (B,)) — the time-dependent weights
DG uses when it combines guidances; `classifier_guidance_cond_fn` gives classifier guidance the
same kind of weight, and `dg_jax.guidance.discriminator.sum_cond_fns` adds cond_fns (CG + DG).
DG + CFG is `ddpm_sample(cfg_model_fn(...), cond_fn=dg_cond_fn(...))` or, for EDM samplers,
`guide_denoiser(cfg_denoiser(...), dg_correction, w_dg)`.
"""
from __future__ import annotations

from typing import Callable, Union

import jax
import jax.numpy as jnp

from dg_jax.broadcast import expand_like, per_example

Weight = Union[float, Callable]


def _weight_per_example(weight: Weight, t, batch: int, dtype):
    """weight(t) for callables, else the constant broadcast to (B,)."""
    return per_example(weight(t) if callable(weight) else weight, batch, dtype)


def cfg_combine(cond, uncond, weight):
    """(1 + w) cond - w uncond; `weight` is a scalar or per-example (B,)."""
    w = expand_like(weight, cond, cond.dtype)
    return (1 + w) * cond - w * uncond


def null_labels_like(y, null_label: int):
    """Integer labels all equal to the null class index."""
    return jnp.full(jnp.shape(y), null_label, jnp.asarray(y).dtype)


def cfg_model_fn(model_fn: Callable, weight: Weight, null_label: int, *,
                 learned_variance: bool = False, channel_axis: int = -1,
                 batched: bool = True) -> Callable:
    """model_fn(x, t_model, y) -> guided output, for `ddpm_sample` / `ddim_sample`.

    `model_fn` takes integer labels y (null_label = the unconditional class). With `batched`
    the conditional and unconditional inputs go through one call of twice the batch.
    With `learned_variance`, the output's second half on `channel_axis` (the variance
    interpolation) is the conditional one; guidance acts on the first half only.
    """

    def guided(x, t, y):
        if y is None:
            raise ValueError("classifier-free guidance needs class labels y")
        y = jnp.asarray(y)
        y_null = null_labels_like(y, null_label)
        if batched:
            both = model_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                            jnp.concatenate([y, y_null]))
            cond, uncond = jnp.split(both, 2, axis=0)
        else:
            cond, uncond = model_fn(x, t, y), model_fn(x, t, y_null)
        w = _weight_per_example(weight, t, x.shape[0], cond.dtype)
        if not learned_variance:
            return cfg_combine(cond, uncond, w)
        eps_c, var_c = jnp.split(cond, 2, axis=channel_axis)
        eps_u, _ = jnp.split(uncond, 2, axis=channel_axis)
        return jnp.concatenate([cfg_combine(eps_c, eps_u, w), var_c], axis=channel_axis)

    return guided


def cfg_denoiser(denoise_fn: Callable, weight: Weight) -> Callable:
    """EDM denoiser D(x, sigma, labels) -> CFG-guided denoiser, labels one-hot (B, K).

    The unconditional evaluation uses all-zero label rows; `weight` may be a function of sigma.
    """

    def guided(x, sigma, labels=None):
        if labels is None:
            raise ValueError("classifier-free guidance needs one-hot class labels")
        labels = jnp.asarray(labels)
        cond = denoise_fn(x, sigma, labels)
        uncond = denoise_fn(x, sigma, jnp.zeros_like(labels))
        sig = per_example(sigma, x.shape[0], x.dtype)
        w = _weight_per_example(weight, sig, x.shape[0], cond.dtype)
        return cfg_combine(cond, uncond, w)

    return guided


def classifier_guidance_cond_fn(classifier_logits_fn: Callable, weight: Weight) -> Callable:
    """Classifier guidance (guided-diffusion's `classifier_sample.py` cond_fn) with a scale
    that may depend on time, for logits = classifier_logits_fn(x, t_model):
    cond_fn(x, t_model, y) = w(t) * grad_x sum_i log softmax(logits)_i[y_i].

    A constant weight is guided-diffusion's `classifier_scale`. The samplers take it as their
    `cond_fn`: `ddpm_sample` turns it into a mean shift, `ddim_sample` into an eps shift.
    """

    def cond_fn(x, t, y):
        def selected_log_prob(x_in):
            log_probs = jax.nn.log_softmax(classifier_logits_fn(x_in, t), axis=-1)
            return jnp.sum(jnp.take_along_axis(log_probs, jnp.asarray(y)[:, None], axis=-1))

        grad = jax.grad(selected_log_prob)(x)
        w = _weight_per_example(weight, t, x.shape[0], grad.dtype)
        return expand_like(w, grad) * grad

    return cond_fn


# ----------------------------------------------------------------------------- weight schedules

def constant_weight(weight: float) -> Callable:
    return lambda t: jnp.full(jnp.shape(t), weight, jnp.float32)


def window_weight(weight: float, t_min: float, t_max: float) -> Callable:
    """w inside t_min <= t <= t_max (model timesteps), 0 outside."""
    if t_min > t_max:
        raise ValueError(f"guidance window t_min={t_min} > t_max={t_max}")

    def w(t):
        t = jnp.asarray(t, jnp.float32)
        return jnp.where((t >= t_min) & (t <= t_max), weight, 0.0)

    return w


def linear_weight(weight_at_0: float, weight_at_T: float, num_timesteps: int) -> Callable:
    """w(t) interpolating linearly from weight_at_0 (t = 0) to weight_at_T (t = T - 1)."""
    span = max(num_timesteps - 1, 1)

    def w(t):
        frac = jnp.asarray(t, jnp.float32) / span
        return weight_at_0 + (weight_at_T - weight_at_0) * frac

    return w
