"""Noisy classifier training for classifier guidance (Dhariwal & Nichol 2021, classifier_train.py).

The classifier (guided-diffusion's EncoderUNetModel) sees x_t = q_sample(x_0, t, noise) at
t drawn uniformly over every step of the diffusion process, is called with the model timestep
(`model_timesteps`, as the sampler will call it) and is trained with cross entropy on the label.
`vp_noisy_classifier_loss` is the same on DG's continuous VP time (the classifier a DG
discriminator is built on).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from dg_jax.diffusion.iddpm import DiscreteDiffusion, model_timesteps, q_sample
from dg_jax.diffusion.processes import VP, perturb
from dg_jax.train.discriminator import sample_time
from dg_jax.train.state import TrainState


def noisy_classifier_loss(params, logits_fn: Callable, diffusion: DiscreteDiffusion, x_start,
                          labels, key):
    """Mean cross entropy of logits_fn(params, x_t, t_model, dropout_key) at uniform t; returns
    (loss, metrics{'loss', 'accuracy'})."""
    k_t, k_noise, k_model = jax.random.split(key, 3)
    t = jax.random.randint(k_t, (x_start.shape[0],), 0, diffusion.num_timesteps)
    x_t = q_sample(diffusion, x_start, t, jax.random.normal(k_noise, x_start.shape, x_start.dtype))
    logits = logits_fn(params, x_t, model_timesteps(diffusion, t), k_model)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return loss, {"loss": loss, "accuracy": accuracy}


def make_noisy_classifier_step(logits_fn: Callable, diffusion: DiscreteDiffusion,
                               tx: optax.GradientTransformation):
    """(TrainState, batch{'images', 'labels'}) -> (TrainState, metrics)."""

    def train_step(state: TrainState, batch):
        (_, metrics), grads = jax.value_and_grad(noisy_classifier_loss, has_aux=True)(
            state.params, logits_fn, diffusion, batch["images"], batch["labels"],
            state.step_key())
        return state.apply_gradients(grads, tx), metrics

    return train_step


def vp_noisy_classifier_loss(params, logits_fn: Callable, x_start, labels, key, *,
                             process: VP = VP(), time_sampling: str = "uniform",
                             t_min: float = 1e-5):
    """The same cross entropy on DG's continuous VP time: x_tau = perturb(process, x_0, tau,
    noise) at tau drawn by `sample_time` (uniform on [t_min, 1] or DG's importance sampling),
    logits_fn(params, x_tau, tau, dropout_key). DG's discriminators start from a classifier of
    this kind (its ADM classifier takes tau, x999 inside)."""
    k_t, k_noise, k_model = jax.random.split(key, 3)
    tau = sample_time(k_t, (x_start.shape[0],), time_sampling, process, t_min)
    x_t = perturb(process, x_start, tau, jax.random.normal(k_noise, x_start.shape, x_start.dtype))
    logits = logits_fn(params, x_t, tau, k_model)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
    return loss, {"loss": loss, "accuracy": accuracy}


def make_vp_noisy_classifier_step(logits_fn: Callable, tx: optax.GradientTransformation,
                                  **loss_kwargs):
    """(TrainState, batch{'images', 'labels'}) -> (TrainState, metrics) of
    `vp_noisy_classifier_loss` (`loss_kwargs`: process, time_sampling, t_min)."""

    def train_step(state: TrainState, batch):
        (_, metrics), grads = jax.value_and_grad(vp_noisy_classifier_loss, has_aux=True)(
            state.params, logits_fn, batch["images"], batch["labels"], state.step_key(),
            **loss_kwargs)
        return state.apply_gradients(grads, tx), metrics

    return train_step
