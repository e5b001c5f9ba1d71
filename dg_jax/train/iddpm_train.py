"""Improved-DDPM training (Nichol & Dhariwal 2021) with classifier-free label dropout.

One jit-able step per batch, a pure function of the state and the batch:

  t ~ uniform, or importance-sampled by the second moment of each t's last 10 losses
      ('loss-second-moment': `LossSecondMomentState`, uniform until every t has 10 losses);
  loss = guided-diffusion's `training_losses` (L_simple, L_vlb or the hybrid L_simple + L_vlb
      with the stop-gradient on the mean and the learned-range variance), weighted by 1 / (T p_t)
      so the importance-sampled loss stays unbiased;
  labels -> the null label `num_classes` with probability p_uncond (classifier-free guidance);
  EMA of the parameters (`dg_jax.train.state.ema_update`).

The loss-history state lives in `DiffusionTrainState.loss_state`, so orbax checkpoints it with
the parameters and a resumed run samples t from the same distribution. Per-step randomness is
fold_in(rng, step), so resumed runs draw the same numbers.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

from dg_jax.diffusion.iddpm import DiscreteDiffusion
from dg_jax.diffusion.iddpm_losses import (
    LossSecondMomentState,
    init_loss_second_moment,
    sample_timesteps,
    schedule_weights,
    training_losses,
    update_loss_second_moment,
)
from dg_jax.train.state import TrainState

SCHEDULE_SAMPLERS = ("uniform", "loss-second-moment")


@struct.dataclass
class DiffusionTrainState(TrainState):
    """`TrainState` (with its EMA) plus the importance-sampling history (None for uniform t)."""

    loss_state: Optional[LossSecondMomentState] = None

    @classmethod
    def create(cls, params, tx: optax.GradientTransformation, rng,
               loss_state: Optional[LossSecondMomentState] = None, *,
               ema: bool = True) -> "DiffusionTrainState":
        """The improved-DDPM step keeps an EMA, so `ema` defaults to True here."""
        return super().create(params, tx, rng, ema=ema, loss_state=loss_state)


def initial_loss_state(schedule_sampler: str, diffusion: DiscreteDiffusion,
                       field: str = "schedule_sampler") -> Optional[LossSecondMomentState]:
    """The importance-sampling history for 'loss-second-moment', None for 'uniform'."""
    if schedule_sampler == "uniform":
        return None
    if schedule_sampler == "loss-second-moment":
        return init_loss_second_moment(diffusion.num_timesteps)
    raise ValueError(f"unknown schedule sampler {schedule_sampler!r} (field '{field}'); "
                     f"choose one of {list(SCHEDULE_SAMPLERS)}")


def drop_labels(key, labels, p_uncond: float, null_label: int):
    """Classifier-free guidance training: each integer label becomes `null_label` with
    probability p_uncond (independently per example)."""
    labels = jnp.asarray(labels)
    drop = jax.random.bernoulli(key, p_uncond, labels.shape)
    return jnp.where(drop, jnp.asarray(null_label, labels.dtype), labels)


def iddpm_loss(params, apply_fn: Callable, diffusion: DiscreteDiffusion, x_start, labels, key,
               *, t_weights, p_uncond: float = 0.0, null_label: Optional[int] = None):
    """Mean importance-weighted training loss and per-example terms.

    apply_fn(params, x_t, t_model, labels, dropout_key) -> model output (NHWC, 2C channels for a
    learned variance); labels are integers or None (unconditional model).
    Returns (loss, aux) with aux['t'] (B,), aux['losses'] (B,) unweighted per-example loss and
    aux['metrics'] (means of loss / mse / vb).
    """
    k_t, k_noise, k_drop, k_model = jax.random.split(key, 4)
    t, weights = sample_timesteps(k_t, t_weights, x_start.shape[0])
    noise = jax.random.normal(k_noise, x_start.shape, x_start.dtype)
    if labels is not None and p_uncond > 0:
        if null_label is None:
            raise ValueError("label dropout (p_uncond > 0) needs the null label index")
        labels = drop_labels(k_drop, labels, p_uncond, null_label)

    def model_fn(x_t, t_model):
        return apply_fn(params, x_t, t_model, labels, k_model)

    terms = training_losses(diffusion, model_fn, x_start, t, noise)
    loss = jnp.mean(terms["loss"] * weights)
    metrics = {k: jnp.mean(v) for k, v in terms.items() if k != "loss"}
    metrics["loss"] = loss
    return loss, {"t": t, "losses": terms["loss"], "metrics": metrics}


def make_iddpm_train_step(apply_fn: Callable, diffusion: DiscreteDiffusion,
                          tx: optax.GradientTransformation, *, ema_decay: float = 0.9999,
                          schedule_sampler: str = "uniform", p_uncond: float = 0.0,
                          null_label: Optional[int] = None):
    """(state, batch{'images', 'labels'?}) -> (state, metrics). Wrap in jax.jit (with the batch
    sharded over the mesh) or call as is."""
    if schedule_sampler not in SCHEDULE_SAMPLERS:
        raise ValueError(f"unknown schedule sampler {schedule_sampler!r}; choose one of "
                         f"{list(SCHEDULE_SAMPLERS)}")
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond={p_uncond} must lie in [0, 1]")

    def train_step(state: DiffusionTrainState, batch):
        if schedule_sampler == "loss-second-moment" and state.loss_state is None:
            raise ValueError("schedule_sampler='loss-second-moment' needs state.loss_state "
                             "(DiffusionTrainState.create(..., loss_state=initial_loss_state))")
        t_weights = schedule_weights(schedule_sampler, diffusion, state.loss_state)
        (_, aux), grads = jax.value_and_grad(iddpm_loss, has_aux=True)(
            state.params, apply_fn, diffusion, batch["images"], batch.get("labels"),
            state.step_key(), t_weights=t_weights, p_uncond=p_uncond, null_label=null_label)
        loss_state = state.loss_state
        if schedule_sampler == "loss-second-moment":
            loss_state = update_loss_second_moment(loss_state, aux["t"],
                                                   jax.lax.stop_gradient(aux["losses"]))
        new = state.apply_gradients(grads, tx, ema_beta=ema_decay, loss_state=loss_state)
        return new, aux["metrics"]

    return train_step
