"""A small CNN trained on all 1,797 scikit-learn digits: the feature extractor and the scorer
for the embedded image experiments (Fréchet distance on its penultimate features, and whether
samples show the class they were asked for). Independent of every model it scores."""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dg_jax import rng
from dg_jax.data.digits import load_digits_float
from dg_jax.metric_writers import Progress, log


class DigitsCNN(nn.Module):
    feature_dim: int = 64

    @nn.compact
    def __call__(self, x, return_features: bool = False):
        h = nn.relu(nn.Conv(32, (3, 3))(x))
        h = nn.avg_pool(nn.relu(nn.Conv(64, (3, 3))(h)), (2, 2), (2, 2))
        h = nn.relu(nn.Conv(64, (3, 3))(h))
        h = jnp.mean(h, axis=(1, 2))
        feats = nn.relu(nn.Dense(self.feature_dim)(h))
        logits = nn.Dense(10)(feats)
        return (logits, feats) if return_features else logits


def train_digits_classifier(resolution: int = 8, seed: int = 0, steps: int = 600,
                            batch_size: int = 128):
    """Trains on all digits with light shift augmentation; returns (apply_fn, params, accuracy)
    where apply_fn(params, x in [-1, 1] NHWC) -> (logits, features)."""
    images, labels = load_digits_float(resolution)
    model = DigitsCNN()
    params = model.init(rng.key(seed, "eval", "digits_classifier", "init"),
                        jnp.zeros((1,) + images.shape[1:]))
    tx = optax.adam(2e-3)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, x, y, k):
        shift = jax.random.randint(k, (2,), -1, 2)
        x = jnp.roll(x, shift, axis=(1, 2))

        def loss_fn(p):
            logits = model.apply(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    key = rng.key(seed, "eval", "digits_classifier", "train")
    batches = rng.numpy(seed, "eval", "digits_classifier", "batches")
    log(f"[digits classifier] training {steps} steps (the evaluation network)")
    progress = Progress("digits classifier", steps, "steps", every=15.0)
    for i in range(steps):
        idx = batches.integers(0, len(images), batch_size)
        params, opt_state = step(params, opt_state, images[idx], labels[idx],
                                 jax.random.fold_in(key, i))
        if (i + 1) % 50 == 0 or i + 1 == steps:  # a host sync only every 50 steps
            jax.block_until_ready(params)
            progress.update(i + 1 - progress.count)
    apply_fn = jax.jit(functools.partial(model.apply, return_features=True))
    logits, _ = apply_fn(params, images)
    accuracy = float(np.mean(np.argmax(np.asarray(logits), -1) == labels))
    return apply_fn, params, accuracy


def digits_features(apply_fn, params, images, batch_size: int = 512):
    """(logits, features) for images given as uint8 or floats in [-1, 1], NHWC."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 127.5 - 1.0
    outs = [apply_fn(params, jnp.asarray(images[i:i + batch_size]))
            for i in range(0, len(images), batch_size)]
    return (np.concatenate([np.asarray(o[0]) for o in outs]),
            np.concatenate([np.asarray(o[1]) for o in outs]))
