"""guided-diffusion networks, DG's discriminator and their checkpoint mapping.

Tiny random modules check the state-dict mapping (round trip, error paths), jit vs eager and the
DG discriminator's gradient path; the parity cases run `python -m launch.parity --only KIND`
against the official PyTorch outputs in ../shared/fixtures/parity (skipped when absent).
"""
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.convert.adm import params_to_state_dict, state_dict_to_params, torch_key
from dg_jax.convert.torch_reader import CheckpointError
from dg_jax.models.adm import EncoderUNetModel, UNetModel
from dg_jax.models.adm_flags import classifier_from_flags, unet_from_flags
from dg_jax.models.dg_discriminator import DGDiscriminator

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_unet(**overrides):
    kw = dict(image_size=8, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
              attention_resolutions=(2,), channel_mult=(1, 2), num_classes=5, num_heads=2,
              use_scale_shift_norm=True, resblock_updown=True)
    kw.update(overrides)
    return UNetModel(**kw)


def tiny_encoder(**overrides):
    kw = dict(image_size=8, in_channels=3, model_channels=32, out_channels=4, num_res_blocks=1,
              attention_resolutions=(2,), channel_mult=(1, 2), num_head_channels=32,
              use_scale_shift_norm=True, resblock_updown=True, pool="attention")
    kw.update(overrides)
    return EncoderUNetModel(**kw)


def _randomize(variables, seed):
    """Every parameter random (the official init zeroes some layers, which would hide bugs)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda v: jnp.asarray(0.2 * rng.standard_normal(v.shape), jnp.float32), variables)


def _init(module, labels=True):
    """Random variables and inputs (batch 2, 8x8) for a tiny module."""
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, module.in_channels))
    t = jnp.array([3.0, 700.0])
    y = jnp.array([1, 4]) if labels and module.num_classes is not None else None
    variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), x, t, y)
    return _randomize(variables, 5), (x, t, y)


def test_torch_key_names():
    assert torch_key(("input_blocks_1_0", "in_layers_2", "kernel")) == \
        "input_blocks.1.0.in_layers.2.weight"
    assert torch_key(("out_2", "positional_embedding")) == "out.2.positional_embedding"
    assert torch_key(("label_emb", "embedding")) == "label_emb.weight"
    assert torch_key(("middle_block_1", "norm", "scale")) == "middle_block.1.norm.weight"


def test_state_dict_round_trip_and_layouts():
    module = tiny_encoder()
    variables, _ = _init(module)
    sd = params_to_state_dict(variables)
    assert sd["input_blocks.0.0.weight"].shape == (32, 3, 3, 3)
    assert sd["input_blocks.3.1.qkv.weight"].shape == (192, 64, 1)
    assert sd["time_embed.0.weight"].shape == (128, 32)
    assert sd["out.2.positional_embedding"].shape == (64, 17)
    back = state_dict_to_params(module, sd)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, jax.device_get(variables))


def test_mapping_errors_name_the_tensors():
    module = tiny_unet()
    variables, _ = _init(module)
    sd = params_to_state_dict(variables)
    renamed = dict(sd)
    renamed["middle_block.1.qkv.weightX"] = renamed.pop("middle_block.1.qkv.weight")
    with pytest.raises(CheckpointError) as err:
        state_dict_to_params(module, renamed, source="ckpt.pt")
    msg = str(err.value)
    assert "ckpt.pt" in msg and "missing" in msg and "middle_block.1.qkv.weight " in msg
    assert "unexpected" in msg and "middle_block.1.qkv.weightX" in msg

    bad = dict(sd)
    bad["out.2.weight"] = np.zeros((6, 16, 3, 3), np.float32)
    with pytest.raises(CheckpointError, match=r"mis-shaped.*out\.2\.weight"):
        state_dict_to_params(module, bad)

    extra = dict(sd, **{"label_emb.extra": np.zeros(3, np.float32)})
    with pytest.raises(CheckpointError, match="label_emb.extra"):
        state_dict_to_params(module, extra)


@pytest.mark.slow
@pytest.mark.parametrize("new_order", [False, True])
def test_unet_jit_matches_eager(new_order):
    module = tiny_unet(use_new_attention_order=new_order, resblock_updown=not new_order,
                       use_scale_shift_norm=not new_order,
                       num_head_channels=32 if new_order else -1)
    variables, (x, t, y) = _init(module)
    eager = module.apply(variables, x, t, y)
    jitted = jax.jit(module.apply)(variables, x, t, y)
    assert eager.shape == (2, 8, 8, 6) and float(jnp.abs(eager).max()) > 1e-3
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", ["attention", "adaptive", "spatial", "spatial_v2"])
def test_encoder_pools_jit_matches_eager(pool):
    module = tiny_encoder(pool=pool, num_classes=5 if pool == "attention" else None,
                          time_scale=999.0)
    variables, (x, t, y) = _init(module)
    t = t / 1000.0
    eager = module.apply(variables, x, t, y)
    jitted = jax.jit(module.apply)(variables, x, t, y)
    assert eager.shape == (2, 4)
    # float32 reassociation under jit: the error scales with the logits' size (~1e2 here), so
    # the absolute tolerance is relative to the largest logit, not to each entry
    scale = float(jnp.abs(eager).max())
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5,
                               atol=1e-6 * max(scale, 1.0))
    assert scale > 1e-3
    feats = module.apply(variables, x, t, y, feature=True)
    assert feats.shape == (2, 4, 4, 64)


def test_dropout_only_in_training():
    module = tiny_unet(dropout=0.5)
    variables, (x, t, y) = _init(module)
    a = module.apply(variables, x, t, y)
    np.testing.assert_array_equal(a, module.apply(variables, x, t, y))
    b = module.apply(variables, x, t, y, train=True, rngs={"dropout": jax.random.PRNGKey(3)})
    assert not np.allclose(a, b)


def test_flag_builders():
    flags = dict(image_size=32, classifier_use_fp16=False, classifier_width=32,
                 classifier_depth=1, classifier_attention_resolutions="16,8",
                 classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                 classifier_pool="attention", out_channels=10)
    m = classifier_from_flags(flags)
    assert m.channel_mult == (1, 2, 4) and m.attention_resolutions == (2, 4)
    assert m.time_scale == 999.0 and m.num_head_channels == 64
    with pytest.raises(ValueError, match="classifier_widht"):
        classifier_from_flags(dict(flags, classifier_widht=3))
    u = unet_from_flags(dict(image_size=32, num_channels=32, num_res_blocks=1,
                             channel_mult="1,2,2", learn_sigma=True, class_cond=True,
                             attention_resolutions="16,8", noise_schedule="cosine"))
    assert u.out_channels == 6 and u.num_classes == 1000 and u.attention_resolutions == (2, 4)


@pytest.mark.slow
def test_dg_discriminator_gradient_reaches_input():
    classifier = tiny_encoder(out_channels=10, time_scale=999.0)
    head = EncoderUNetModel(image_size=4, in_channels=64, model_channels=32, out_channels=1,
                            num_res_blocks=1, attention_resolutions=(1,), channel_mult=(1,),
                            num_head_channels=32, use_scale_shift_norm=True,
                            resblock_updown=True, pool="attention", num_classes=10,
                            time_scale=999.0)
    disc = DGDiscriminator(classifier, head)
    c_vars, (x, _, _) = _init(classifier)
    head_shapes = jax.eval_shape(disc.init_head, jax.random.PRNGKey(2))
    params = {"classifier": c_vars, "head": _randomize(head_shapes, 6)}
    tau = jnp.array([0.1, 0.7])
    onehot = jax.nn.one_hot(jnp.array([2, 7]), 10)
    logit_fn, prob_fn = jax.jit(disc.logit), jax.jit(disc.prob)
    logit = logit_fn(params, x, tau, jnp.array([2, 7]))
    np.testing.assert_allclose(logit_fn(params, x, tau, onehot), logit, rtol=1e-6)
    np.testing.assert_allclose(prob_fn(params, x, tau, onehot), jax.nn.sigmoid(logit), rtol=1e-6)

    def total(p, z):
        return disc.logit(p, z, tau, onehot).sum()

    g_params, g_x = jax.jit(jax.grad(total, argnums=(0, 1)))(params, x)
    assert g_x.shape == x.shape and float(jnp.abs(g_x).max()) > 0
    assert max(float(jnp.abs(v).max())
               for v in jax.tree_util.tree_leaves(g_params["classifier"])) > 0


PARITY_KINDS = ["adm_classifier", "dg_discriminator", "adm_unet", "dg_edm_sampler",
                "dg_correction"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", PARITY_KINDS)
def test_parity_against_official_code(shared_fixtures, kind):
    fixtures = shared_fixtures / "parity"
    if not (fixtures / "manifest.json").is_file():
        pytest.skip(f"no parity manifest at {fixtures}")
    proc = subprocess.run([sys.executable, "-m", "launch.parity", "--fixtures", str(fixtures),
                           "--only", kind], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout
