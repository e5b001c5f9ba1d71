"""Training DG's discriminator head on precomputed frozen features.

DG's discriminator is head(features(x_tau, tau), tau): the ADM classifier that makes `features`
is frozen, so its forward pass can be done once instead of at every step. Each image gets
`num_draws` fixed (tau, noise) draws (DG's time sampling); the classifier's middle-block
features of those diffused images are stored (float16 by default: N * draws * H' * W' * C' * 2
bytes) and the head trains on random rows of that pool. It trades the fresh noise of every
step for a fixed set of `num_draws` per image, and costs one classifier pass per draw instead of
one per step and image: with the classifier dominating the cost, a head step is several times
cheaper.

    pool = precompute_features(features_fn, images, key, num_draws=4, ...)   # host arrays
    step = make_head_train_step(head_logit_fn, tx)   # batch: feats, tau, targets[, labels]

`features_fn(x_vp, tau) -> (N, H', W', C')`; `head_logit_fn(head_params, feats, tau, labels)
-> (N,)`. The head's gradient on a precomputed row equals the full discriminator's gradient
on the same (x_tau, tau) (tested).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dg_jax.diffusion.processes import VP, perturb
from dg_jax.metric_writers import log
from dg_jax.train.discriminator import sample_time
from dg_jax.train.state import TrainState


def precompute_features(features_fn: Callable, images: np.ndarray, key, *, num_draws: int,
                        process: VP = VP(), time_sampling: str = "importance",
                        t_min: float = 1e-5, batch_size: int = 256,
                        dtype=np.float16, name: str = "features") -> dict:
    """{'feats': (N * num_draws, H', W', C') in `dtype`, 'tau': (N * num_draws,) float32,
    'index': (N * num_draws,) the image each row came from}. Draw d uses fold_in(key, d) and a
    key per image, so the pool does not depend on batch_size."""
    if num_draws < 1:
        raise ValueError(f"disc.precompute_draws={num_draws} must be >= 1 to precompute")
    n = len(images)
    fn = jax.jit(lambda x0, tau, noise: features_fn(perturb(process, x0, tau, noise), tau))
    feats, taus, index = [], [], []
    t0 = time.perf_counter()
    for d in range(num_draws):
        k_t, k_noise = jax.random.split(jax.random.fold_in(key, d))
        tau_all = np.asarray(sample_time(k_t, (n,), time_sampling, process, t_min), np.float32)
        image_keys = jax.random.split(k_noise, n)  # one noise key per image
        for start in range(0, n, batch_size):
            x0 = jnp.asarray(images[start:start + batch_size], jnp.float32)
            noise = jax.vmap(lambda k: jax.random.normal(k, x0.shape[1:]))(
                image_keys[start:start + batch_size])
            tau = jnp.asarray(tau_all[start:start + batch_size])
            feats.append(np.asarray(fn(x0, tau, noise)).astype(dtype))
        taus.append(tau_all)
        index.append(np.arange(n))
        log(f"[{name}] draw {d + 1}/{num_draws}: {n} images ({time.perf_counter() - t0:.1f}s)")
    pool = {"feats": np.concatenate(feats), "tau": np.concatenate(taus),
            "index": np.concatenate(index)}
    log(f"[{name}] {len(pool['tau'])} rows of {pool['feats'].shape[1:]} features, "
        f"{pool['feats'].nbytes / 2**20:.1f} MiB")
    return pool


def head_loss(head_params, head_logit_fn: Callable, feats, tau, targets,
              labels: Optional[jnp.ndarray] = None):
    """Mean BCE of the head on precomputed features, with the metrics of the full loss."""
    logits = head_logit_fn(head_params, feats.astype(jnp.float32), tau, labels)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, targets))
    real = targets > 0.5
    metrics = {"loss": loss, "accuracy": jnp.mean((logits > 0) == real),
               "d_real": jnp.sum(jnp.where(real, jax.nn.sigmoid(logits), 0)) / jnp.sum(real),
               "d_fake": jnp.sum(jnp.where(real, 0, jax.nn.sigmoid(logits))) / jnp.sum(~real)}
    return loss, metrics


def make_head_train_step(head_logit_fn: Callable, tx: optax.GradientTransformation):
    """(state, batch) -> (state, metrics); batch holds 'feats', 'tau', 'targets' (1 real,
    0 fake) and optionally 'labels'."""
    def train_step(state: TrainState, batch):
        (_, metrics), grads = jax.value_and_grad(head_loss, has_aux=True)(
            state.params, head_logit_fn, batch["feats"], batch["tau"], batch["targets"],
            batch.get("labels"))
        return state.apply_gradients(grads, tx), metrics

    return train_step
