"""EDM's training schedules (Karras et al. 2022, NVlabs/edm training_loop.py) around `edm_loss`.

- learning rate: lr * min(cur_nimg / (lr_rampup_kimg * 1000), 1), cur_nimg = images seen before
  this step (Adam, betas (0.9, 0.999), eps 1e-8);
- EMA with a half-life in images: half_life = ema_halflife_kimg * 1000, capped at
  cur_nimg * ema_rampup_ratio when a ramp-up ratio is set; beta = 0.5 ** (batch / half_life);
- gradients pass through nan_to_num (nan -> 0, +-inf -> +-1e5) before the update, as EDM does.
The state is `TrainState.create(params, tx, rng, ema=True)` (dg_jax.train.state).
"""
from __future__ import annotations

from typing import Callable, Optional

import jax.numpy as jnp
import optax

from dg_jax.train.edm_loss import make_edm_train_step


def edm_learning_rate(learning_rate: float, batch_size: int, lr_rampup_kimg: float) -> Callable:
    """optax schedule of the update count: EDM's linear ramp over lr_rampup_kimg thousand images."""
    ramp_nimg = max(lr_rampup_kimg * 1000.0, 1e-8)

    def schedule(count):
        return learning_rate * jnp.minimum(count * batch_size / ramp_nimg, 1.0)

    return schedule


def edm_optimizer(learning_rate: float, batch_size: int, lr_rampup_kimg: float = 10000.0,
                  betas=(0.9, 0.999), eps: float = 1e-8) -> optax.GradientTransformation:
    return optax.adam(edm_learning_rate(learning_rate, batch_size, lr_rampup_kimg),
                      b1=betas[0], b2=betas[1], eps=eps)


def edm_ema_beta(step, batch_size: int, ema_halflife_kimg: float,
                 ema_rampup_ratio: Optional[float] = 0.05):
    """EMA decay for the update made at `step` (cur_nimg = step * batch_size)."""
    cur_nimg = jnp.asarray(step, jnp.float32) * batch_size
    half_life = jnp.asarray(ema_halflife_kimg * 1000.0, jnp.float32)
    if ema_rampup_ratio is not None:
        half_life = jnp.minimum(half_life, cur_nimg * ema_rampup_ratio)
    return 0.5 ** (batch_size / jnp.maximum(half_life, 1e-8))


def make_edm_schedule_train_step(denoise_fn: Callable, tx: optax.GradientTransformation, *,
                                 batch_size: int, ema_halflife_kimg: float = 500.0,
                                 ema_rampup_ratio: Optional[float] = 0.05, **loss_kwargs):
    """`make_edm_train_step` with EDM's EMA half-life schedule and gradient sanitising:
    (TrainState with EMA, batch{'images', 'labels'?}) -> (state, {'loss', 'ema_beta'}).

    denoise_fn(params, x, sigma, labels, dropout_key) -> D (EDM's label dropout, when the
    network has one, happens inside it).
    """
    return make_edm_train_step(
        denoise_fn, tx, sanitize_grads=True,
        ema_decay=lambda step: edm_ema_beta(step, batch_size, ema_halflife_kimg,
                                            ema_rampup_ratio), **loss_kwargs)
