"""Discriminator training: the loss's optimum, resume exactness, sharded == single-device."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.checkpoint import Checkpointer
from dg_jax.models.mlp import TimeMLP
from dg_jax.parallel import make_mesh, replicated
from dg_jax.train.discriminator import discriminator_loss, make_train_step, sample_time
from dg_jax.train.loop import NonFiniteLossError, train_loop
from dg_jax.train.state import TrainState, make_optimizer

MODEL = TimeMLP(width=32, depth=2, time_embed_dim=16)


def logit_fn(params, x, t, labels=None):
    return MODEL.apply(params, x, t)


def batch_fn(step, n=32):
    rng = np.random.default_rng([7, step])
    return {"real": rng.normal(1.0, 0.5, (n, 2)).astype(np.float32),
            "fake": rng.normal(-1.0, 0.8, (n, 2)).astype(np.float32)}


def fresh_state(mesh):
    params = MODEL.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)), jnp.zeros((1,)))
    tx = make_optimizer("adam", 3e-3)
    state = TrainState.create(params, tx, jax.random.PRNGKey(1))
    return jax.device_put(state, replicated(mesh)), tx


def run(mesh, workdir, num_steps, fail_at=None, every=5):
    state, tx = fresh_state(mesh)
    ckpt = Checkpointer(workdir) if workdir else None
    if ckpt:
        state, _ = ckpt.restore_or(state)
    step = jax.jit(make_train_step(logit_fn, tx, time_sampling="importance"), donate_argnums=0)

    def batches(i):
        if fail_at is not None and i == fail_at:
            raise KeyboardInterrupt("simulated kill")
        return batch_fn(i)

    state = train_loop(state, step, batches, num_steps=num_steps, mesh=mesh, checkpointer=ckpt,
                       checkpoint_every=every, log_every=every)
    if ckpt:
        ckpt.close()
    return state


@pytest.mark.slow
def test_killed_and_resumed_run_matches_uninterrupted(tmp_path):
    mesh = make_mesh()
    straight = run(mesh, tmp_path / "a", 20)
    with pytest.raises(KeyboardInterrupt):
        run(mesh, tmp_path / "b", 20, fail_at=13)  # dies after the step-10 checkpoint
    assert Checkpointer(tmp_path / "b").latest_step() == 10
    resumed = run(mesh, tmp_path / "b", 20)
    assert int(resumed.step) == 20
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                           straight.params, resumed.params)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                           straight.opt_state, resumed.opt_state)


def test_sharded_training_equals_single_device():
    one = run(make_mesh(jax.devices()[:1]), None, 6)
    eight = run(make_mesh(jax.devices()), None, 6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                           one.params, eight.params)


def test_optimal_logit_minimises_bce():
    """Real N(1, 1) vs fake N(-1, 1): diffused to tau both have variance 1 and means +-m(tau), so
    the exact log ratio is 2 m x; the BCE is lower there than at scaled versions of it."""
    from dg_jax.diffusion.processes import VP

    vp = VP()

    def analytic(params, x, tau, labels=None):
        m, s = vp.mean(tau), vp.std(tau)
        var = m**2 + s**2  # = 1: data variance 1, diffused on the VP process
        return params * 2.0 * m * x[:, 0] / var  # log N(x; m, var) - log N(x; -m, var)

    key = jax.random.PRNGKey(0)
    real = 1.0 + jax.random.normal(key, (20000, 1))
    fake = -1.0 + jax.random.normal(jax.random.fold_in(key, 1), (20000, 1))
    losses = [float(discriminator_loss(a, analytic, real, fake, key, time_sampling="uniform")[0])
              for a in (0.7, 1.0, 1.3)]
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_time_sampling_errors_and_range():
    t = sample_time(jax.random.PRNGKey(0), (1000,), "uniform")
    assert float(t.min()) >= 1e-5 and float(t.max()) <= 1.0
    with pytest.raises(ValueError, match="disc.time_sampling"):
        sample_time(jax.random.PRNGKey(0), (4,), "sobol")


def test_non_finite_loss_stops_with_step_number(tmp_path):
    mesh = make_mesh()
    state, tx = fresh_state(mesh)

    def nan_step(state, batch):
        return state.replace(step=state.step + 1), {"loss": jnp.where(state.step >= 6, jnp.nan, 1.0)}

    ckpt = Checkpointer(tmp_path)
    with pytest.raises(NonFiniteLossError, match="step 8"):
        train_loop(state, nan_step, batch_fn, num_steps=12, mesh=mesh, checkpointer=ckpt,
                   checkpoint_every=4, log_every=4)
    assert ckpt.latest_step() == 4


@pytest.mark.parametrize("respacing", ["", "5"])
def test_discrete_diffuse_is_q_sample_at_the_model_timestep(respacing):
    """discrete_diffuse draws t uniformly over the process's steps, returns q_sample(x0, t) and
    tau = model timestep / 999 (what dg_cond_fn gives the discriminator at that step); with it
    the loss diffuses by the discrete process instead of the VP one."""
    from dg_jax.diffusion.iddpm import create_gaussian_diffusion, q_sample
    from dg_jax.train.discriminator import discrete_diffuse

    diffusion = create_gaussian_diffusion(steps=50, noise_schedule="cosine",
                                          timestep_respacing=respacing)
    x0 = jnp.linspace(-1.0, 1.0, 4000).reshape(1000, 4)
    key = jax.random.PRNGKey(3)
    x_t, tau = jax.jit(discrete_diffuse(diffusion))(x0, key)
    k_t, k_noise = jax.random.split(key)
    t = jax.random.randint(k_t, (1000,), 0, diffusion.num_timesteps)
    chex.assert_trees_all_close(
        x_t, q_sample(diffusion, x0, t, jax.random.normal(k_noise, x0.shape)), atol=1e-6)
    model_t = np.asarray(diffusion.timestep_map)[np.asarray(t)]
    chex.assert_trees_all_close(tau, (model_t / 999.0).astype(np.float32), rtol=1e-6)
    assert len(np.unique(np.asarray(t))) == diffusion.num_timesteps  # every step is drawn

    seen = {}

    def logit(params, x, tau, labels=None):
        seen["tau"] = tau
        return jnp.zeros(x.shape[0])

    loss, _ = discriminator_loss(None, logit, x0[:500], x0[500:], key,
                                 diffuse=discrete_diffuse(diffusion))
    chex.assert_trees_all_close(seen["tau"], tau, rtol=1e-6)
    assert abs(float(loss) - np.log(2.0)) < 1e-6
