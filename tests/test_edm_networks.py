"""EDM networks: resampling layers, jit agreement, state-dict mapping errors, fixture parity."""
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from dg_jax.convert.edm import edm_variable_shapes, map_edm_state_dict, torch_name
from dg_jax.convert.torch_reader import CheckpointError
from dg_jax.models.edm_layers import Conv2d, resample_filter_2d
from dg_jax.models.edm_precond import edm_precond_from_kwargs, iddpm_u_table

REPO = pathlib.Path(__file__).resolve().parents[1]

TINY_SONG = dict(img_resolution=8, img_channels=3, label_dim=4, model_type="SongUNet",
                 model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4],
                 dropout=0.0)
NCSNPP = dict(embedding_type="fourier", channel_mult_noise=2, encoder_type="residual",
              resample_filter=[1, 3, 3, 1])


def _init(precond, seed=0):
    model = precond.model
    res, ch = precond.img_resolution, precond.img_channels
    labels = jnp.zeros((1, model.label_dim)) if model.label_dim else None
    return model.init(jax.random.PRNGKey(seed), jnp.zeros((1, res, res, ch)), jnp.zeros((1,)),
                      labels)


def _random_variables(precond, seed=0):
    """Variables shaped like `init`'s without running the network: random params, true buffers."""
    shapes = edm_variable_shapes(precond)
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(np.float32),
                                    shapes["params"])
    filt = resample_filter_2d(getattr(precond.model, "resample_filter", (1, 1)))[None, None]
    buffers = jax.tree_util.tree_map(lambda s: filt, shapes.get("buffers", {}))
    return {"params": params, "buffers": buffers}


def _torch_state_dict(precond, variables) -> dict:
    """The torch-layout state dict a checkpoint of this network would hold."""
    state = {}
    for path, value in traverse_util.flatten_dict(variables["params"]).items():
        value = np.asarray(value)
        if value.ndim == 4:
            value = np.transpose(value, (3, 2, 0, 1))
        elif value.ndim == 2:
            value = value.T
        state[torch_name(path)] = value
    for path, value in traverse_util.flatten_dict(variables.get("buffers", {})).items():
        state[torch_name(path)] = np.asarray(value)
    return state


def _inputs(batch=2, res=8, label_dim=4, seed=1):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(k1, (batch, res, res, 3))
    sigma = jnp.exp(jax.random.normal(k2, (batch,)))
    labels = jax.nn.one_hot(jnp.arange(batch) % label_dim, label_dim) if label_dim else None
    return x, sigma, labels


def test_resampling_matches_pooling_and_nearest_upsampling():
    x = jax.random.normal(jax.random.PRNGKey(0), (1, 6, 6, 2))
    down = Conv2d(2, 2, 0, down=True, resample_filter=(1, 1))
    y = down.apply({}, x)
    np.testing.assert_allclose(y, x.reshape(1, 3, 2, 3, 2, 2).mean(axis=(2, 4)), atol=1e-6)
    up = Conv2d(2, 2, 0, up=True, resample_filter=(1, 1))
    np.testing.assert_allclose(up.apply({}, x), jnp.repeat(jnp.repeat(x, 2, 1), 2, 2), atol=1e-6)
    # [1,3,3,1] preserves constants away from the border, in both directions.
    ones = jnp.ones((1, 8, 8, 1))
    for conv in (Conv2d(1, 1, 0, down=True, resample_filter=(1, 3, 3, 1)),
                 Conv2d(1, 1, 0, up=True, resample_filter=(1, 3, 3, 1))):
        out = conv.apply({}, ones)
        np.testing.assert_allclose(out[0, 1:-1, 1:-1, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(resample_filter_2d((1, 3, 3, 1)).sum(), 1.0)


@pytest.mark.parametrize("extra", [{}, NCSNPP, dict(encoder_type="skip", decoder_type="skip")],
                         ids=["ddpmpp", "ncsnpp", "skip"])
@pytest.mark.slow
def test_song_unet_jit_matches_eager(extra):
    precond = edm_precond_from_kwargs("VPPrecond", {**TINY_SONG, **extra})
    params = _init(precond)["params"]
    x, sigma, labels = _inputs()
    eager = precond(params, x, sigma, labels)
    jitted = jax.jit(precond)(params, x, sigma, labels)
    assert eager.shape == x.shape and eager.dtype == jnp.float32
    np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_dhariwal_iddpm_and_round_sigma():
    kwargs = dict(img_resolution=8, img_channels=3, label_dim=0, model_type="DhariwalUNet",
                  model_channels=16, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4],
                  dropout=0.0)
    precond = edm_precond_from_kwargs("iDDPMPrecond", kwargs)
    variables = _init(precond)
    assert variables["params"]["out_conv"]["weight"].shape == (3, 3, 16, 6)  # 2C outputs
    x, sigma, _ = _inputs(label_dim=0)
    out = precond(variables["params"], x, sigma, None)
    assert out.shape == x.shape and np.all(np.isfinite(out))
    u = iddpm_u_table()
    assert u[-1] == 0 and np.all(np.diff(u) < 0)
    np.testing.assert_array_equal(precond.round_sigma(jnp.asarray(u[[3, 500]])), u[[3, 500]])
    # The mapping needs and consumes the `u` buffer.
    state = _torch_state_dict(precond, variables)
    with pytest.raises(CheckpointError, match=r"missing tensors: u"):
        map_edm_state_dict(state, precond)
    params, mapped = map_edm_state_dict({**state, "u": u}, precond)
    np.testing.assert_array_equal(mapped.u, u)


def test_state_dict_roundtrip_and_mapping_errors():
    precond = edm_precond_from_kwargs("VEPrecond", {**TINY_SONG, **NCSNPP})
    variables = _random_variables(precond)
    state = _torch_state_dict(precond, variables)
    assert "model.enc.8x8_conv.weight" in state and "model.map_noise.freqs" in state
    assert any(k.endswith("resample_filter") for k in state)
    params, _ = map_edm_state_dict(state, precond)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, variables["params"])

    renamed = dict(state)
    renamed["model.enc.8x8_conv.kernel"] = renamed.pop("model.enc.8x8_conv.weight")
    with pytest.raises(CheckpointError, match=r"missing tensors: model\.enc\.8x8_conv\.weight"
                                              r".*unexpected tensors: model\.enc\.8x8_conv\.kernel"):
        map_edm_state_dict(renamed, precond)

    bad_shape = dict(state)
    bad_shape["model.map_layer0.weight"] = bad_shape["model.map_layer0.weight"][:, :-1]
    with pytest.raises(CheckpointError, match=r"mis-shaped tensors: model\.map_layer0\.weight"):
        map_edm_state_dict(bad_shape, precond)

    extra = {**state, "model.enc.8x8_extra.bias": np.zeros(3, np.float32)}
    with pytest.raises(CheckpointError, match=r"unexpected tensors: model\.enc\.8x8_extra\.bias"):
        map_edm_state_dict(extra, precond)

    filt_key = next(k for k in state if k.endswith("resample_filter"))
    wrong_filter = {**state, filt_key: np.full_like(state[filt_key], 0.25)}
    with pytest.raises(CheckpointError, match="differs from the filter"):
        map_edm_state_dict(wrong_filter, precond)


def test_unknown_model_kwarg_is_named():
    with pytest.raises(ValueError, match="num_blokcs"):
        edm_precond_from_kwargs("EDMPrecond", {**TINY_SONG, "num_blokcs": 2})


def test_variable_shapes_are_abstract():
    precond = edm_precond_from_kwargs("EDMPrecond", TINY_SONG)
    shapes = edm_variable_shapes(precond)
    leaf = shapes["params"]["map_layer0"]["weight"]
    assert isinstance(leaf, jax.ShapeDtypeStruct) and leaf.shape == (8, 32)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["edm_denoiser", "edm_sampler"])
def test_fixture_parity(shared_fixtures, kind):
    fixtures = shared_fixtures / "parity"
    if not (fixtures / "manifest.json").is_file():
        pytest.skip(f"no parity manifest in {fixtures}")
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "launch.parity", "--fixtures", str(fixtures),
                           "--only", kind], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout
