"""The one train state and the one EMA update (dg_jax.train.state), shared by the EDM, the
improved-DDPM and the GAN objectives."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dg_jax.checkpoint import Checkpointer
from dg_jax.diffusion.iddpm_losses import init_loss_second_moment
from dg_jax.train.iddpm_train import DiffusionTrainState
from dg_jax.train.state import TrainState, ema_update


def _params():
    return {"w": jnp.arange(6.0).reshape(2, 3), "b": {"c": jnp.array([1.0, -2.0])}}


@pytest.mark.parametrize("jit", [False, True])
def test_ema_update_closed_form(jit):
    ema = _params()
    params = jax.tree_util.tree_map(lambda x: 3.0 * x + 1.0, ema)
    fn = jax.jit(ema_update) if jit else ema_update
    for beta in [0.0, 0.25, 0.9, 1.0]:
        expect = jax.tree_util.tree_map(lambda e, p: beta * e + (1 - beta) * p, ema, params)
        chex.assert_trees_all_close(fn(ema, params, beta), expect, rtol=1e-6, atol=1e-6)
        chex.assert_trees_all_close(fn(ema, params, jnp.float32(beta)), expect, rtol=1e-6,
                                    atol=1e-6)
    # beta = 0 copies the params exactly (EDM's first step, StyleGAN2's ramp-up start)
    chex.assert_trees_all_equal(fn(ema, params, 0.0), params)


def test_create_without_and_with_ema():
    tx = optax.adam(1e-2)
    plain = TrainState.create(_params(), tx, jax.random.PRNGKey(0))
    assert plain.ema_params is None and int(plain.step) == 0
    assert jax.tree_util.tree_structure(plain) == jax.tree_util.tree_structure(
        TrainState.create(_params(), tx, jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="ema=True"):
        plain.apply_gradients(_params(), tx, ema_beta=0.5)
    with_ema = TrainState.create(_params(), tx, jax.random.PRNGKey(0), ema=True)
    chex.assert_trees_all_equal(with_ema.ema_params, with_ema.params)
    for e, p in zip(jax.tree_util.tree_leaves(with_ema.ema_params),
                    jax.tree_util.tree_leaves(with_ema.params)):
        assert e is not p and e.unsafe_buffer_pointer() != p.unsafe_buffer_pointer()


def test_step_key_is_fold_in_of_step():
    state = TrainState.create(_params(), optax.sgd(0.1), jax.random.PRNGKey(3))
    state = state.replace(step=jnp.asarray(7, jnp.int32))
    np.testing.assert_array_equal(np.asarray(state.step_key()),
                                  np.asarray(jax.random.fold_in(jax.random.PRNGKey(3), 7)))


def test_apply_gradients_matches_optax_and_ema_survives_donation():
    tx = optax.adam(1e-1)
    params = _params()  # a host-side reference copy: the state's own buffers get donated
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    expect = optax.apply_updates(params, updates)
    expect_ema = ema_update(params, expect, 0.75)
    state = TrainState.create(_params(), tx, jax.random.PRNGKey(0), ema=True)
    step = jax.jit(lambda s, g: s.apply_gradients(g, tx, ema_beta=0.75), donate_argnums=0)
    new = step(state, grads)
    assert int(new.step) == 1
    chex.assert_trees_all_close(new.params, expect, rtol=1e-6)
    chex.assert_trees_all_close(new.ema_params, expect_ema, rtol=1e-6)
    # a second donated step still reads the EMA buffers (donating params did not free them)
    newer = step(new, grads)
    assert np.all(np.isfinite(np.asarray(newer.ema_params["w"])))
    assert int(newer.step) == 2


def test_diffusion_train_state_extends_train_state():
    tx = optax.adam(1e-2)
    loss_state = init_loss_second_moment(5)
    state = DiffusionTrainState.create(_params(), tx, jax.random.PRNGKey(1), loss_state)
    assert isinstance(state, TrainState)
    assert state.ema_params is not None and state.loss_state is loss_state
    grads = jax.tree_util.tree_map(jnp.ones_like, state.params)
    new = jax.jit(lambda s, g: s.apply_gradients(g, tx, ema_beta=0.5),
                  donate_argnums=0)(state, grads)
    assert type(new) is DiffusionTrainState and int(new.step) == 1
    uniform = DiffusionTrainState.create(_params(), tx, jax.random.PRNGKey(1))
    assert uniform.loss_state is None


@pytest.mark.parametrize("with_loss_state", [True, False])
def test_diffusion_train_state_checkpoint_round_trip_bit_for_bit(tmp_path, with_loss_state):
    tx = optax.adam(1e-2)
    loss_state = init_loss_second_moment(5) if with_loss_state else None
    state = DiffusionTrainState.create(_params(), tx, jax.random.PRNGKey(1), loss_state)
    key = jax.random.PRNGKey(9)
    grads = jax.tree_util.tree_map(lambda x: jax.random.normal(key, x.shape), state.params)
    if with_loss_state:
        hist = jax.random.normal(key, state.loss_state.loss_history.shape)
        state = state.replace(loss_state=state.loss_state.replace(
            loss_history=hist, loss_counts=state.loss_state.loss_counts + 3))
    state = jax.jit(lambda s: s.apply_gradients(grads, tx, ema_beta=0.3))(state)
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, state)
    template = DiffusionTrainState.create(_params(), tx, jax.random.PRNGKey(5),
                                          init_loss_second_moment(5) if with_loss_state
                                          else None)
    restored = ckpt.restore(template)
    ckpt.close()
    assert type(restored) is DiffusionTrainState
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(state)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(restored.rng), np.asarray(state.rng))


def test_gan_state_is_built_from_train_states():
    from dg_jax.gan import diffusion_aug as da
    from dg_jax.gan.state import GANState

    cfg = da.DiffusionConfig()
    g, d = {"g": jnp.ones((3,))}, {"d": jnp.zeros((2,))}
    state = GANState.create(g, d, optax.adam(1e-3), optax.adam(1e-3),
                            da.init_state(jax.random.PRNGKey(0), cfg), jax.random.PRNGKey(4))
    assert isinstance(state.g, TrainState) and isinstance(state.d, TrainState)
    assert state.d.ema_params is None and state.g.rng is None and state.d.rng is None
    chex.assert_trees_all_equal(state.g.ema_params, g)
    state = state.replace(step=jnp.asarray(11, jnp.int32))
    np.testing.assert_array_equal(np.asarray(state.step_key()),
                                  np.asarray(jax.random.fold_in(jax.random.PRNGKey(4), 11)))
