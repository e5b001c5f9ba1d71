"""Training score models and guides (issue 5): improved-DDPM step with importance sampling,
label dropout, noisy classifier, EDM schedules, classifier-free guidance, the NaN guard, and the
sharded step on the 8 fake devices."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dg_jax.checkpoint import Checkpointer
from dg_jax.diffusion.iddpm import create_gaussian_diffusion
from dg_jax.guidance.cfg import (
    cfg_combine,
    cfg_denoiser,
    cfg_model_fn,
    classifier_guidance_cond_fn,
    linear_weight,
    window_weight,
)
from dg_jax.models.adm import EncoderUNetModel, UNetModel
from dg_jax.parallel import make_mesh, replicate, shard_batch
from dg_jax.samplers.ddpm import ddim_sample, ddpm_sample
from dg_jax.train.edm_train import edm_ema_beta, edm_learning_rate
from dg_jax.train.iddpm_train import (
    DiffusionTrainState,
    drop_labels,
    initial_loss_state,
    make_iddpm_train_step,
)
from dg_jax.train.loop import NonFiniteLossError, train_loop
from dg_jax.train.noisy_classifier import make_noisy_classifier_step, noisy_classifier_loss
from dg_jax.train.state import TrainState

NUM_CLASSES = 3


# ----------------------------------------------------------------------------- tiny models

def tiny_unet(learn_sigma=True, num_classes=NUM_CLASSES + 1):
    return UNetModel(image_size=4, in_channels=1, model_channels=32,
                     out_channels=2 if learn_sigma else 1, num_res_blocks=1,
                     attention_resolutions=(), channel_mult=(1,), num_classes=num_classes)


def tiny_setup(schedule_sampler="loss-second-moment", p_uncond=0.5, steps=20):
    diffusion = create_gaussian_diffusion(steps=steps, learn_sigma=True, noise_schedule="cosine")
    unet = tiny_unet()
    params = unet.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 1)), jnp.zeros((1,), jnp.int32),
                       jnp.zeros((1,), jnp.int32))["params"]
    tx = optax.adam(1e-3)

    def apply_fn(p, x, t, y, key):
        return unet.apply({"params": p}, x, t, y)

    state = DiffusionTrainState.create(params, tx, jax.random.PRNGKey(1),
                                       initial_loss_state(schedule_sampler, diffusion))
    step = make_iddpm_train_step(apply_fn, diffusion, tx, ema_decay=0.9,
                                 schedule_sampler=schedule_sampler, p_uncond=p_uncond,
                                 null_label=NUM_CLASSES)
    return diffusion, unet, state, step


def tiny_batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
    images = (labels[:, None, None, None] - 1.0) * np.ones((n, 4, 4, 1), np.float32) * 0.8
    images = images + 0.05 * rng.standard_normal(images.shape).astype(np.float32)
    return {"images": images, "labels": labels}


# ----------------------------------------------------------------------------- CFG

def test_cfg_combine_closed_form():
    cond, uncond = jnp.array([[1.0, 2.0]]), jnp.array([[3.0, -1.0]])
    chex.assert_trees_all_close(cfg_combine(cond, uncond, 0.0), cond)
    chex.assert_trees_all_close(cfg_combine(cond, uncond, -1.0), uncond)
    chex.assert_trees_all_close(cfg_combine(cond, uncond, 2.0), 3 * cond - 2 * uncond)
    per_example = cfg_combine(jnp.ones((2, 3)), jnp.zeros((2, 3)), jnp.array([0.0, 1.0]))
    chex.assert_trees_all_close(per_example, jnp.array([[1.0] * 3, [2.0] * 3]))


@pytest.mark.parametrize("batched", [True, False])
def test_cfg_model_fn_reduces_to_conditional_and_keeps_variance(batched):
    def model_fn(x, t, y):  # eps half depends on the label, variance half on x only
        eps = x + y.astype(x.dtype)[:, None, None, None]
        return jnp.concatenate([eps, 0.1 * x], axis=-1)

    x = jax.random.normal(jax.random.PRNGKey(0), (4, 2, 2, 1))
    t, y = jnp.zeros((4,), jnp.int32), jnp.array([0, 1, 2, 1])
    at_zero = cfg_model_fn(model_fn, 0.0, NUM_CLASSES, learned_variance=True, batched=batched)
    chex.assert_trees_all_close(at_zero(x, t, y), model_fn(x, t, y))
    w = 1.5
    guided = cfg_model_fn(model_fn, w, NUM_CLASSES, learned_variance=True, batched=batched)(x, t, y)
    expected_eps = (1 + w) * (x + y[:, None, None, None]) - w * (x + NUM_CLASSES)
    chex.assert_trees_all_close(guided[..., :1], expected_eps, atol=1e-5)
    chex.assert_trees_all_close(guided[..., 1:], 0.1 * x)


def test_cfg_time_dependent_weight_and_window():
    def model_fn(x, t, y):
        return jnp.where(y[:, None] == NUM_CLASSES, 0.0, 1.0) * jnp.ones_like(x)

    x, y = jnp.zeros((3, 2)), jnp.array([0, 1, 2])
    t = jnp.array([0, 50, 99])
    out = cfg_model_fn(model_fn, window_weight(2.0, 10, 60), NUM_CLASSES)(x, t, y)
    chex.assert_trees_all_close(out[:, 0], jnp.array([1.0, 3.0, 1.0]))
    lin = linear_weight(0.0, 4.0, 100)(t)
    chex.assert_trees_all_close(lin, jnp.array([0.0, 200 / 99, 4.0]), atol=1e-6)


def test_cfg_denoiser_equals_eps_space_rule():
    def denoise(x, sigma, labels):
        return 0.5 * x + labels.sum(-1)[:, None, None, None] * sigma[:, None, None, None]

    x = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 2, 1))
    sigma = jnp.array([0.5, 2.0])
    onehot = jax.nn.one_hot(jnp.array([0, 2]), NUM_CLASSES)
    w = 0.7
    d_guided = cfg_denoiser(denoise, w)(x, sigma, onehot)
    eps = lambda d: (x - d) / sigma[:, None, None, None]  # noqa: E731
    chex.assert_trees_all_close(
        eps(d_guided), cfg_combine(eps(denoise(x, sigma, onehot)),
                                   eps(denoise(x, sigma, jnp.zeros_like(onehot))), w), atol=1e-5)
    chex.assert_trees_all_close(cfg_denoiser(denoise, 0.0)(x, sigma, onehot),
                                denoise(x, sigma, onehot))


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_cfg_with_samplers_w0_is_conditional(sampler):
    diffusion = create_gaussian_diffusion(steps=8, learn_sigma=True, noise_schedule="cosine")
    unet = tiny_unet()
    x0 = jnp.zeros((1, 4, 4, 1))
    params = unet.init(jax.random.PRNGKey(3), x0, jnp.zeros((1,), jnp.int32),
                       jnp.zeros((1,), jnp.int32))
    model_fn = lambda x, t, y: unet.apply(params, x, t, y)  # noqa: E731
    noise = jax.random.normal(jax.random.PRNGKey(4), (4, 4, 4, 1))
    y = jnp.array([0, 1, 2, 0])
    run = ddpm_sample if sampler == "ddpm" else ddim_sample
    kwargs = dict(y=y, rng=jax.random.PRNGKey(5))
    plain = run(diffusion, model_fn, noise, **kwargs)
    guided = jax.jit(lambda n: run(diffusion, cfg_model_fn(model_fn, 0.0, NUM_CLASSES,
                                                           learned_variance=True), n, **kwargs))
    chex.assert_trees_all_close(guided(noise), plain, atol=1e-5)


def test_classifier_guidance_cond_fn_closed_form_and_time_dependence():
    w_mat = jax.random.normal(jax.random.PRNGKey(0), (8, NUM_CLASSES))
    logits_fn = lambda x, t: x.reshape(x.shape[0], -1) @ w_mat  # noqa: E731
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 2, 2, 2))
    t, y = jnp.array([5, 500]), jnp.array([0, 2])
    # linear logits: grad_x log softmax(x W)_y = W[:, y] - sum_k softmax_k W[:, k]
    probs = jax.nn.softmax(x.reshape(2, -1) @ w_mat, -1)
    expected = 3.0 * (w_mat[:, y].T - probs @ w_mat.T).reshape(x.shape)
    chex.assert_trees_all_close(classifier_guidance_cond_fn(logits_fn, 3.0)(x, t, y), expected,
                                atol=1e-5)
    windowed = classifier_guidance_cond_fn(logits_fn, window_weight(3.0, 0, 100))(x, t, y)
    chex.assert_trees_all_close(windowed[1], jnp.zeros_like(windowed[1]))
    chex.assert_trees_all_close(windowed[0], classifier_guidance_cond_fn(logits_fn, 3.0)(x, t, y)[0],
                                atol=1e-6)


# ----------------------------------------------------------------------------- label dropout

@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_label_dropout_rate(p):
    labels = jnp.asarray(np.arange(200_000) % NUM_CLASSES, jnp.int32)
    out = drop_labels(jax.random.PRNGKey(0), labels, p, NUM_CLASSES)
    dropped = out == NUM_CLASSES
    # binomial standard deviation at n = 2e5 is <= 0.0012: 5 sigma
    assert abs(float(dropped.mean()) - p) < 0.006
    np.testing.assert_array_equal(np.asarray(out)[~np.asarray(dropped)],
                                  np.asarray(labels)[~np.asarray(dropped)])


# ----------------------------------------------------------------------------- iddpm step

@pytest.mark.slow
@pytest.mark.parametrize("jit", [False, True])
def test_iddpm_step_updates_importance_state_and_ema(jit):
    _, _, state, step = tiny_setup()
    fn = jax.jit(step) if jit else step
    batch = jax.tree_util.tree_map(jnp.asarray, tiny_batch())
    new, metrics = fn(state, batch)
    assert np.isfinite(float(metrics["loss"]))
    assert {"loss", "mse", "vb"} <= set(metrics)
    assert int(new.step) == 1
    assert int(new.loss_state.loss_counts.sum()) == 16  # one entry per example
    assert float(jnp.abs(new.loss_state.loss_history).sum()) > 0
    leaf = lambda tree: jax.tree_util.tree_leaves(tree)[3]  # noqa: E731
    # EMA moved 10% of the way towards the new params
    chex.assert_trees_all_close(leaf(new.ema_params),
                                0.9 * leaf(state.params) + 0.1 * leaf(new.params), atol=1e-6)


@pytest.mark.slow
def test_jit_and_eager_steps_agree():
    _, _, state, step = tiny_setup()
    batch = jax.tree_util.tree_map(jnp.asarray, tiny_batch())
    eager, m_eager = step(state, batch)
    jitted, m_jit = jax.jit(step)(state, batch)
    chex.assert_trees_all_close(m_eager, m_jit, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(eager.loss_state, jitted.loss_state, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_importance_sampling_leaves_uniform_after_warmup():
    from dg_jax.diffusion.iddpm_losses import loss_second_moment_weights

    _, _, state, step = tiny_setup(steps=4)
    fn = jax.jit(step)
    batch = jax.tree_util.tree_map(jnp.asarray, tiny_batch(n=32))
    for _ in range(6):  # 4 timesteps x 10 losses need 40 draws; 6 x 32 is plenty
        state, _ = fn(state, batch)
    assert bool(jnp.all(state.loss_state.loss_counts == 10))
    w = loss_second_moment_weights(state.loss_state)
    assert not np.allclose(np.asarray(w), np.asarray(w)[0])  # no longer uniform


@pytest.mark.slow
def test_importance_state_is_checkpointed(tmp_path):
    _, _, state, step = tiny_setup()
    state, _ = jax.jit(step)(state, jax.tree_util.tree_map(jnp.asarray, tiny_batch()))
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, state)
    _, _, template, _ = tiny_setup()
    restored = ckpt.restore(template)
    ckpt.close()
    chex.assert_trees_all_close(restored.loss_state, state.loss_state)
    chex.assert_trees_all_close(restored.ema_params, state.ema_params)
    assert int(restored.step) == 1


@pytest.mark.slow
def test_sharded_step_matches_single_device():
    assert jax.device_count() == 8
    _, _, state, step = tiny_setup()
    batch = tiny_batch(n=16)
    single, m1 = jax.jit(step)(state, jax.tree_util.tree_map(jnp.asarray, batch))
    mesh = make_mesh()
    sharded, m8 = jax.jit(step)(replicate(state, mesh), shard_batch(batch, mesh))
    assert len(sharded.params["out_2"]["kernel"].sharding.device_set) == 8
    chex.assert_trees_all_close(m1, jax.device_get(m8), rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(single.params, jax.device_get(sharded.params), rtol=1e-3,
                                atol=1e-5)
    chex.assert_trees_all_close(single.loss_state, jax.device_get(sharded.loss_state), rtol=1e-4,
                                atol=1e-5)


@pytest.mark.slow
def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    _, _, state, step = tiny_setup(schedule_sampler="uniform")

    def poisoned(state, batch):
        new, metrics = step(state, batch)
        bad = new.step > 5
        metrics = dict(metrics, loss=jnp.where(bad, jnp.nan, metrics["loss"]))
        return new, metrics

    mesh = make_mesh()
    ckpt = Checkpointer(tmp_path / "ckpt")
    batch = tiny_batch(n=16)
    with pytest.raises(NonFiniteLossError, match="step 6"):
        train_loop(replicate(state, mesh), jax.jit(poisoned), lambda i: batch, num_steps=10,
                   mesh=mesh, checkpointer=ckpt, checkpoint_every=3, log_every=3)
    assert ckpt.latest_step() == 3
    ckpt.close()


# ----------------------------------------------------------------------------- noisy classifier

@pytest.mark.slow
def test_noisy_classifier_loss_decreases():
    diffusion = create_gaussian_diffusion(steps=20, noise_schedule="cosine")
    model = EncoderUNetModel(image_size=4, in_channels=1, model_channels=32,
                             out_channels=NUM_CLASSES, num_res_blocks=1, attention_resolutions=(),
                             channel_mult=(1,), pool="adaptive")
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 1)),
                        jnp.zeros((1,), jnp.int32))["params"]
    tx = optax.adam(1e-2)
    logits_fn = lambda p, x, t, k: model.apply({"params": p}, x, t)  # noqa: E731
    step = jax.jit(make_noisy_classifier_step(logits_fn, diffusion, tx))
    held = jax.tree_util.tree_map(jnp.asarray, tiny_batch(256, 999))
    evaluate = jax.jit(lambda p: noisy_classifier_loss(p, logits_fn, diffusion, held["images"],
                                                       held["labels"], jax.random.PRNGKey(7))[0])
    state = TrainState.create(params, tx, jax.random.PRNGKey(2))
    before = float(evaluate(state.params))
    for i in range(200):
        state, metrics = step(state, jax.tree_util.tree_map(jnp.asarray, tiny_batch(32, i)))
        assert np.isfinite(float(metrics["loss"]))
    after = float(evaluate(state.params))
    assert before == pytest.approx(np.log(NUM_CLASSES), abs=0.05)  # zero-initialised head
    assert after < 0.75 * before


# ----------------------------------------------------------------------------- EDM schedules

def test_edm_schedules_closed_form():
    lr = edm_learning_rate(1e-3, batch_size=512, lr_rampup_kimg=10)
    assert float(lr(0)) == 0.0
    assert float(lr(10)) == pytest.approx(1e-3 * 10 * 512 / 10_000)
    assert float(lr(10_000)) == pytest.approx(1e-3)
    assert float(edm_ema_beta(0, 512, 500.0, 0.05)) == 0.0  # the first EMA copies the params
    # after the ramp-up: half-life 500k images -> beta^(500k / 512) = 0.5
    beta = float(edm_ema_beta(10**6, 512, 500.0, 0.05))
    assert beta ** (500_000 / 512) == pytest.approx(0.5, rel=1e-4)
    beta_ramp = float(edm_ema_beta(1000, 512, 500.0, 0.05))  # half-life 0.05 * 512k images
    assert beta_ramp ** (0.05 * 1000 * 512 / 512) == pytest.approx(0.5, rel=1e-4)


@pytest.mark.slow
def test_cg_and_dg_compose_with_cfg_in_one_sampler():
    from dg_jax.guidance.discriminator import dg_cond_fn, sum_cond_fns

    diffusion = create_gaussian_diffusion(steps=6, learn_sigma=True, noise_schedule="cosine")
    unet = tiny_unet()
    params = unet.init(jax.random.PRNGKey(3), jnp.zeros((1, 4, 4, 1)), jnp.zeros((1,), jnp.int32),
                       jnp.zeros((1,), jnp.int32))
    model_fn = lambda x, t, y: unet.apply(params, x, t, y)  # noqa: E731
    w_mat = jax.random.normal(jax.random.PRNGKey(0), (16, NUM_CLASSES))
    logits_fn = lambda x, t: x.reshape(x.shape[0], -1) @ w_mat  # noqa: E731
    logit_fn = lambda x, tau, y: jnp.sum(x.reshape(x.shape[0], -1), -1) * tau  # noqa: E731
    cg = classifier_guidance_cond_fn(logits_fn, window_weight(2.0, 0, 500))
    dg = dg_cond_fn(logit_fn, weight=lambda tau: 1.0 - tau)
    both = sum_cond_fns(cg, dg)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 4, 4, 1))
    t, y = jnp.array([100, 900]), jnp.array([0, 2])
    chex.assert_trees_all_close(both(x, t, y), cg(x, t, y) + dg(x, t, y), atol=1e-6)
    out = jax.jit(lambda n: ddpm_sample(diffusion, cfg_model_fn(model_fn, 1.0, NUM_CLASSES,
                                                                learned_variance=True),
                                        n, y=y, rng=jax.random.PRNGKey(2), cond_fn=both))(x)
    chex.assert_tree_all_finite(out)
    chex.assert_shape(out, x.shape)
