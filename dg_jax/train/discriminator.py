"""Training DG's discriminator: binary cross-entropy on diffused real vs diffused model samples.

Both sets are diffused on the VP process to a time tau drawn uniformly on [t_min, 1] or by DG's
importance sampling (density proportional to g(tau)^2 / std(tau)^2), and the discriminator
d = sigmoid(logit(x_tau, tau)) learns to output 1 on real and 0 on generated samples; at the
optimum logit = log(p_data^tau / p_model^tau), the quantity DG's correction differentiates.
For a score model on a discrete process of its own (e.g. improved DDPM's cosine schedule),
`discrete_diffuse` diffuses with that process instead, so the discriminator sees the sampler's
own x_t (DDPM-G++ / DDIM-G++ with `dg_cond_fn`).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from dg_jax.diffusion.iddpm import DiscreteDiffusion, model_timesteps, q_sample
from dg_jax.diffusion.processes import VP, perturb, vp_importance_time
from dg_jax.train.state import TrainState

TIME_SAMPLINGS = ("uniform", "importance")


def sample_time(key, shape, method: str, process: VP = VP(), t_min: float = 1e-5):
    """Diffusion times for discriminator training ('uniform' or 'importance')."""
    if method == "uniform":
        return jax.random.uniform(key, shape, minval=t_min, maxval=process.t_max)
    if method == "importance":
        return vp_importance_time(key, shape, process, t_min)
    raise ValueError(f"unknown time sampling {method!r} (field 'disc.time_sampling'); "
                     f"choose one of {list(TIME_SAMPLINGS)}")


def discrete_diffuse(diffusion: DiscreteDiffusion, timestep_scale: float = 999.0) -> Callable:
    """diffuse(x0, key) -> (x_t, tau) on a discrete process: t uniform over its steps,
    x_t = q_sample(x0, t), tau = model timestep / timestep_scale, the time `dg_cond_fn` gives
    the discriminator when a sampler of this process calls it at that step."""
    def diffuse(x0, key):
        k_t, k_noise = jax.random.split(key)
        t = jax.random.randint(k_t, x0.shape[:1], 0, diffusion.num_timesteps)
        x_t = q_sample(diffusion, x0, t, jax.random.normal(k_noise, x0.shape, x0.dtype))
        tau = jnp.asarray(model_timesteps(diffusion, t), jnp.float32) / timestep_scale
        return x_t, tau

    return diffuse


def discriminator_loss(params, logit_fn: Callable, real, fake, key, *, process: VP = VP(),
                       time_sampling: str = "importance", t_min: float = 1e-5,
                       real_labels=None, fake_labels=None, diffuse: Callable | None = None):
    """Mean BCE over the joint batch (real label 1, fake label 0) and metrics.

    logit_fn(params, x_tau, tau, labels) -> (B,) logits. `diffuse(x0, key) -> (x_tau, tau)`
    replaces the VP diffusion (process, time_sampling, t_min) when given (`discrete_diffuse`).
    """
    x0 = jnp.concatenate([real, fake], axis=0)
    targets = jnp.concatenate([jnp.ones(real.shape[0]), jnp.zeros(fake.shape[0])])
    labels = None
    if real_labels is not None:
        labels = jnp.concatenate([real_labels, fake_labels], axis=0)
    if diffuse is not None:
        x_t, tau = diffuse(x0, key)
    else:
        k_t, k_noise = jax.random.split(key)
        tau = sample_time(k_t, targets.shape, time_sampling, process, t_min)
        x_t = perturb(process, x0, tau, jax.random.normal(k_noise, x0.shape, x0.dtype))
    logits = logit_fn(params, x_t, tau, labels)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, targets))
    accuracy = jnp.mean((logits > 0) == (targets > 0.5))
    n = real.shape[0]
    metrics = {"loss": loss, "accuracy": accuracy,
               "d_real": jnp.mean(jax.nn.sigmoid(logits[:n])),
               "d_fake": jnp.mean(jax.nn.sigmoid(logits[n:]))}
    return loss, metrics


def make_train_step(logit_fn: Callable, tx: optax.GradientTransformation, **loss_kwargs):
    """(state, batch) -> (state, metrics); batch holds 'real', 'fake' (+ optional labels)."""
    def train_step(state: TrainState, batch):
        def loss_fn(params):
            return discriminator_loss(
                params, logit_fn, batch["real"], batch["fake"], state.step_key(),
                real_labels=batch.get("real_labels"), fake_labels=batch.get("fake_labels"),
                **loss_kwargs)

        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads, tx), metrics

    return train_step
