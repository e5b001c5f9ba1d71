"""EDM's training loss (Karras et al. 2022, Sec. 5): log-normal sigma, lambda(sigma) weighting.

  sigma = exp(P_mean + P_std n),  n ~ N(0, 1)
  loss  = lambda(sigma) |D(y + sigma eps; sigma, labels) - y|^2,
  lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2.
The train step keeps an exponential moving average of the parameters (`ema_decay`), so its
state is `TrainState.create(params, tx, rng, ema=True)`.
"""
from __future__ import annotations

from typing import Callable, Union

import jax
import jax.numpy as jnp
import optax

from dg_jax.train.state import TrainState


def edm_loss(params, denoise_fn: Callable, images, labels, key, *, P_mean: float = -1.2,
             P_std: float = 1.2, sigma_data: float = 0.5):
    """Mean EDM loss; denoise_fn(params, x, sigma, labels, rng) -> D."""
    k_sigma, k_noise, k_drop = jax.random.split(key, 3)
    sigma = jnp.exp(P_mean + P_std * jax.random.normal(k_sigma, (images.shape[0],)))
    weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
    noisy = images + sigma[:, None, None, None] * jax.random.normal(k_noise, images.shape)
    denoised = denoise_fn(params, noisy, sigma, labels, k_drop)
    per_example = jnp.mean((denoised - images) ** 2, axis=(1, 2, 3)) * weight
    return jnp.mean(per_example)


def make_edm_train_step(denoise_fn: Callable, tx: optax.GradientTransformation,
                        ema_decay: Union[float, Callable] = 0.999,
                        sanitize_grads: bool = False, **loss_kwargs):
    """(state, batch{'images', 'labels'?}) -> (state, {'loss', 'ema_beta'}).

    `ema_decay` is a constant or a function of the step (EDM's half-life schedule:
    `dg_jax.train.edm_train.edm_ema_beta`); `sanitize_grads` passes gradients through EDM's
    nan_to_num (nan -> 0, +-inf -> +-1e5) before the update."""
    def train_step(state: TrainState, batch):
        loss, grads = jax.value_and_grad(edm_loss)(state.params, denoise_fn, batch["images"],
                                                   batch.get("labels"), state.step_key(),
                                                   **loss_kwargs)
        if sanitize_grads:
            grads = jax.tree_util.tree_map(
                lambda g: jnp.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5), grads)
        beta = ema_decay(state.step) if callable(ema_decay) else jnp.asarray(ema_decay)
        return (state.apply_gradients(grads, tx, ema_beta=beta),
                {"loss": loss, "ema_beta": beta})

    return train_step
