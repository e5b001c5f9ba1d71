"""The GAN train state: G, D, the EMA generator, both optimisers and Diffusion-GAN's p, T, t_epl.

Everything that changes during training is one flax.struct pytree, so it is jit-compatible,
replicated over the mesh and saved whole by orbax (p, T and t_epl included: a resumed run
continues with exactly the augmentation an uninterrupted one would use). Each network is the
shared `dg_jax.train.state.TrainState` (the generator's with its EMA), updated by its
`apply_gradients` and the one `ema_update`.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax
from flax import struct

from dg_jax.gan.diffusion_aug import DiffusionState
from dg_jax.train.state import TrainState


@struct.dataclass
class GANState:
    """step (minibatches), the generator g (a TrainState with the EMA generator in
    g.ema_params), the discriminator d (a TrainState without EMA), Diffusion-GAN's
    DiffusionState and the base rng. g.step and d.step count each network's optimiser updates
    (d's include the lazy R1 steps); the networks carry no rng of their own: per-minibatch
    randomness is this state's `step_key()`, the TrainState rule fold_in(rng, step)."""

    step: jnp.ndarray
    g: TrainState
    d: TrainState
    diffusion: DiffusionState
    rng: jnp.ndarray

    @classmethod
    def create(cls, g_params, d_params, g_tx, d_tx, diffusion: DiffusionState, rng) -> "GANState":
        return cls(step=jnp.zeros((), jnp.int32),
                   g=TrainState.create(g_params, g_tx, None, ema=True),
                   d=TrainState.create(d_params, d_tx, None), diffusion=diffusion,
                   rng=jnp.asarray(rng))

    step_key = TrainState.step_key


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
