"""The GAN train state: G, D, the EMA generator, both optimisers and Diffusion-GAN's p, T, t_epl.

Everything that changes during training is one flax.struct pytree, so it is jit-compatible,
replicated over the mesh and saved whole by orbax (p, T and t_epl included: a resumed run
continues with exactly the augmentation an uninterrupted one would use).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from dg_jax.gan.diffusion_aug import DiffusionState


@struct.dataclass
class GANState:
    step: jnp.ndarray
    g_params: Any
    d_params: Any
    ema_params: Any
    g_opt: Any
    d_opt: Any
    diffusion: DiffusionState
    rng: jnp.ndarray

    @classmethod
    def create(cls, g_params, d_params, g_tx, d_tx, diffusion: DiffusionState, rng) -> "GANState":
        return cls(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                   ema_params=jax.tree_util.tree_map(jnp.array, g_params),
                   g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params), diffusion=diffusion,
                   rng=jnp.asarray(rng))

    def step_key(self):
        """Per-step randomness: fold_in(rng, step), so a resumed run draws the same numbers."""
        return jax.random.fold_in(self.rng, self.step)


def gan_adam(learning_rate: float, b1: float = 0.0, b2: float = 0.99, eps: float = 1e-8,
             reg_interval: int = 0) -> optax.GradientTransformation:
    """Adam; with lazy regularisation every `reg_interval` minibatches StyleGAN2 scales
    lr by c = k / (k + 1) and the betas to beta ** c (training_loop.py)."""
    if reg_interval:
        c = reg_interval / (reg_interval + 1)
        learning_rate, b1, b2 = learning_rate * c, b1 ** c, b2 ** c
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


def ema_beta(batch_size: int, cur_nimg, ema_kimg: float, ema_rampup: float | None):
    """0.5 ** (batch / ema_nimg), ema_nimg = min(ema_kimg 1000, cur_nimg rampup) with rampup."""
    ema_nimg = jnp.asarray(ema_kimg * 1000, jnp.float32)
    if ema_rampup is not None and ema_rampup > 0:
        ema_nimg = jnp.minimum(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / jnp.maximum(ema_nimg, 1e-8))


def ema_update(ema_params, params, beta):
    """p_ema <- p + beta (p_ema - p)  (torch's p.lerp(p_ema, beta))."""
    return jax.tree_util.tree_map(lambda e, p: p + beta * (e - p), ema_params, params)
