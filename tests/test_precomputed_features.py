"""Training DG's head on precomputed frozen features (disc.precompute_draws)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import cifar10_edm_dg, digits_dg
from dg_jax.diffusion.processes import VP, perturb
from dg_jax.experiments.dg_images import models as M
from dg_jax.experiments.dg_images import pipeline as dg_images
from dg_jax.experiments.kit.setup import Run
from dg_jax.rng import Streams
from dg_jax.train.precomputed_features import head_loss, precompute_features
from dg_jax.train.state import TrainState, make_optimizer


def _run(config):
    return Run(config, None, None, None, Streams(config.seed))


@pytest.fixture(scope="module")
def disc():
    return M.build_discriminator(cifar10_edm_dg.get_config("smoke"))


@pytest.mark.slow
def test_head_on_features_is_the_discriminator(disc):
    """logit = head_logit(features(x, tau)) and the head's gradient is the same either way."""
    x0 = jax.random.normal(jax.random.PRNGKey(0), (6, 8, 8, 3))
    tau = jnp.linspace(0.05, 0.9, 6)
    x_t = perturb(VP(), x0, tau, jax.random.normal(jax.random.PRNGKey(1), x0.shape))
    targets = jnp.asarray([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    feats = disc.features(x_t, tau)
    chex.assert_trees_all_close(disc.head_logit(disc.trainable, feats, tau), disc.logit(
        disc.trainable, x_t, tau), rtol=1e-5, atol=1e-6)

    def full(p):
        return jnp.mean(optax.sigmoid_binary_cross_entropy(disc.logit(p, x_t, tau), targets))

    g_full = jax.grad(full)(disc.trainable)
    g_head = jax.grad(lambda p: head_loss(p, disc.head_logit, feats, tau, targets)[0])(
        disc.trainable)
    chex.assert_trees_all_close(g_head, g_full, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
def test_pool_is_deterministic_and_independent_of_batch_size(disc, jit):
    images = np.asarray(jax.random.uniform(jax.random.PRNGKey(2), (10, 8, 8, 3)) * 2 - 1)
    fn = jax.jit(disc.features) if jit else disc.features
    a = precompute_features(fn, images, jax.random.PRNGKey(3), num_draws=2, batch_size=4)
    b = precompute_features(fn, images, jax.random.PRNGKey(3), num_draws=2, batch_size=10)
    assert a["feats"].shape[0] == 20 and a["feats"].dtype == np.float16
    np.testing.assert_array_equal(a["index"], np.tile(np.arange(10), 2))
    np.testing.assert_array_equal(a["tau"], b["tau"])
    np.testing.assert_allclose(a["feats"].astype(np.float32), b["feats"].astype(np.float32),
                               rtol=1e-2, atol=1e-3)
    assert not np.allclose(a["tau"][:10], a["tau"][10:])  # two different draws per image
    with pytest.raises(ValueError, match="precompute_draws"):
        precompute_features(fn, images, jax.random.PRNGKey(3), num_draws=0)


@pytest.mark.slow
def test_head_learns_from_the_precomputed_pool(disc):
    """A few head steps on the pool lower the loss on it (real: smooth images, fake: noise)."""
    config = cifar10_edm_dg.get_config("smoke")
    config.disc.batch_size = 16
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.repeat(rng.uniform(-1, 1, (32, 2, 2, 3)), 4, 1), 4, 2)
    real = (smooth.astype(np.float32), None)
    fake = (rng.uniform(-1, 1, (32, 8, 8, 3)).astype(np.float32), None)
    tx = make_optimizer("adam", 1e-3)
    step, batch_fn = dg_images._precomputed_head_training(_run(config), disc, tx, real, fake, 2)
    step = jax.jit(step)  # kit.fit compiles it in the pipeline
    state = TrainState.create(disc.trainable, tx, jax.random.PRNGKey(0))
    losses = []
    for i in range(60):
        state, metrics = step(state, {k: jnp.asarray(v) for k, v in batch_fn(i).items()})
        losses.append(float(metrics["loss"]))
    # minibatch losses are noisy: compare the means of the first and last ten steps
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])


def test_conv_discriminator_refuses_precomputation():
    config = digits_dg.get_config("smoke")
    config.disc.precompute_draws = 2
    d = M.build_discriminator(config)
    with pytest.raises(ValueError, match="disc.precompute_draws=2 needs"):
        dg_images._precomputed_head_training(_run(config), d, make_optimizer("adam", 1e-3),
                                             (None, None), (None, None), 2)

