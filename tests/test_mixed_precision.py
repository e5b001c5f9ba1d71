"""compute_dtype='bfloat16': float32 parameters, bfloat16 activations; outputs close to float32."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.models.adm_flags import classifier_from_flags
from dg_jax.models.edm_precond import edm_precond_from_kwargs
from dg_jax.models.edm_unets import DhariwalUNet, SongUNet
from dg_jax.models.precision import compute_dtype

SONG = dict(img_resolution=8, in_channels=3, out_channels=3, model_channels=16,
            channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,), dropout=0.0)
DHARIWAL = dict(img_resolution=8, in_channels=3, out_channels=3, model_channels=32,
                channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,), dropout=0.0)
CLASSIFIER = dict(image_size=8, classifier_use_fp16=False, classifier_width=64,
                  classifier_depth=1, classifier_attention_resolutions="4",
                  classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                  classifier_pool="attention", out_channels=1)


def _random_params(module, *args, seed=0):
    """Random float32 parameters of `module` without running its (slow to compile) init:
    shapes from eval_shape, weights ~ N(0, 1/fan_in), norm scales ~ 1, other vectors ~ 0.1 N.
    (Random init would leave EDM's zero-initialised layers at zero; these make every layer
    contribute to the output.)"""
    shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args))["params"]
    rng = np.random.default_rng(seed)

    def leaf(path, s):
        name = jax.tree_util.keystr(path).lower()
        if len(s.shape) >= 2:
            v = rng.normal(0, 1 / np.sqrt(np.prod(s.shape[:-1])), s.shape)
        elif "norm" in name and ("weight" in name or "scale" in name):
            v = 1 + 0.1 * rng.normal(size=s.shape)
        else:
            v = 0.1 * rng.normal(size=s.shape)
        return jnp.asarray(v, s.dtype)

    return jax.tree_util.tree_map_with_path(leaf, shapes)


def _apply(module, variables, *args, **kwargs):
    """module.apply under jit (one compiled program instead of hundreds of eager ops)."""
    return jax.jit(lambda v, *a: module.apply(v, *a, **kwargs))(variables, *args)


def _rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(b ** 2)) + 1e-12))


def _inputs(batch=4, res=8, ch=3):
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return jax.random.normal(k1, (batch, res, res, ch)), jax.random.uniform(k2, (batch,))


@pytest.mark.parametrize("cls, kwargs", [(SongUNet, SONG), (DhariwalUNet, DHARIWAL)],
                         ids=["SongUNet", "DhariwalUNet"])
def test_edm_unet_bfloat16_close_to_float32(cls, kwargs):
    x, t = _inputs()
    f32 = cls(**kwargs)
    params = _random_params(f32, x, t)
    bf16 = cls(**kwargs, compute_dtype="bfloat16")
    # same parameter tree, all float32
    shapes = jax.eval_shape(lambda: bf16.init(jax.random.PRNGKey(1), x, t))["params"]
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(params)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(shapes))
    y32 = _apply(f32, {"params": params}, x, t)
    y16 = _apply(bf16, {"params": params}, x, t)
    assert y16.dtype == jnp.float32 and y16.shape == y32.shape  # output in the input's dtype
    assert float(jnp.std(y32)) > 1e-2
    assert _rel_err(y16, y32) < 0.05


def test_bfloat16_actually_changes_the_computation():
    x, t = _inputs()
    f32, bf16 = SongUNet(**SONG), SongUNet(**SONG, compute_dtype="bfloat16")
    params = _random_params(f32, x, t)
    y32 = _apply(f32, {"params": params}, x, t)
    y16 = _apply(bf16, {"params": params}, x, t)
    assert _rel_err(y16, y32) > 1e-5  # not silently float32
    text = jax.jit(lambda p: bf16.apply({"params": p}, x, t)).lower(params).as_text()
    assert "bf16" in text


def test_precond_bfloat16_keeps_float32_state():
    kw = dict(img_resolution=8, img_channels=3, model_type="SongUNet", model_channels=16,
              channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], dropout=0.0)
    p32 = edm_precond_from_kwargs("VPPrecond", kw)
    p16 = edm_precond_from_kwargs("VPPrecond", {**kw, "compute_dtype": "bfloat16"})
    x, _ = _inputs()
    params = _random_params(p32.model, x, jnp.zeros((4,)))
    sigma = jnp.full((4,), 2.0)
    d32, d16 = jax.jit(p32)(params, x, sigma), jax.jit(p16)(params, x, sigma)
    assert d16.dtype == jnp.float32
    assert _rel_err(d16, d32) < 0.05


def test_adm_classifier_bfloat16_close_to_float32():
    x, t = _inputs()
    f32 = classifier_from_flags(CLASSIFIER, dg_time=True)
    bf16 = classifier_from_flags({**CLASSIFIER, "compute_dtype": "bfloat16"}, dg_time=True)
    assert bf16.compute_dtype == "bfloat16" and f32.compute_dtype is None
    variables = {"params": _random_params(f32, x, t)}
    y32, y16 = _apply(f32, variables, x, t), _apply(bf16, variables, x, t)
    assert float(jnp.std(y32)) > 1e-3
    assert _rel_err(y16, y32) < 0.05
    f32_feat = _apply(f32, variables, x, t, feature=True)
    f16_feat = _apply(bf16, variables, x, t, feature=True)
    assert f16_feat.dtype == jnp.float32
    assert _rel_err(f16_feat, f32_feat) < 0.05
    # the DG gradient through the bfloat16 classifier stays close too
    g32 = jax.jit(jax.grad(lambda z: jnp.sum(f32.apply(variables, z, t))))(x)
    g16 = jax.jit(jax.grad(lambda z: jnp.sum(bf16.apply(variables, z, t))))(x)
    assert g16.dtype == jnp.float32
    assert _rel_err(g16, g32) < 0.1


def test_unknown_compute_dtype_names_the_field():
    x, t = _inputs()
    with pytest.raises(ValueError, match="SongUNet.compute_dtype='fp8'"):
        jax.eval_shape(lambda: SongUNet(**SONG, compute_dtype="fp8").init(
            jax.random.PRNGKey(0), x, t))
    with pytest.raises(ValueError, match="EncoderUNetModel.compute_dtype='half'"):
        jax.eval_shape(lambda: classifier_from_flags({**CLASSIFIER, "compute_dtype": "half"}).init(
            jax.random.PRNGKey(0), x, t))
    assert compute_dtype("bfloat16") == jnp.bfloat16


@pytest.mark.slow
def test_pipeline_config_fields_select_the_compute_dtype():
    """score.compute_dtype / disc.compute_dtype reach the networks the DG pipeline builds; the
    bfloat16 denoiser stays close to the float32 one and the conv discriminator refuses it."""
    from configs.digits_dg import get_config
    from dg_jax.experiments.dg_images import models as M

    config = get_config("smoke")
    config.score.source = "random"
    precond32, params = M.build_score_model(config)
    config.score.compute_dtype = "bfloat16"
    precond16, params16 = M.build_score_model(config)
    assert precond16.model.compute_dtype == "bfloat16"
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 1))
    sigma = jnp.full((4,), 0.7)
    labels = jax.nn.one_hot(jnp.arange(4), 10)
    a = precond32(params, x, sigma, labels)
    b = precond16(params16, x, sigma, labels)
    assert b.dtype == jnp.float32
    assert _rel_err(b, a) < 0.05
    config.disc.compute_dtype = "bfloat16"
    with pytest.raises(ValueError, match="disc.compute_dtype"):
        M.build_discriminator(config)


def _conv_dtypes(jaxpr, out):
    """Operand dtypes of every convolution in a jaxpr, sub-jaxprs included."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            out.append(str(eqn.invars[0].aval.dtype))
        for v in eqn.params.values():
            for sub in (v if isinstance(v, (list, tuple)) else [v]):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _conv_dtypes(inner, out)
    return out


def test_dg_gradient_backward_runs_in_the_compute_dtype():
    """The frozen classifier's backward pass (DG's grad_x of the logit) keeps bfloat16
    convolutions: no float32 convolution appears in the gradient program."""
    x, t = _inputs()
    bf16 = classifier_from_flags({**CLASSIFIER, "compute_dtype": "bfloat16"}, dg_time=True)
    variables = {"params": _random_params(classifier_from_flags(CLASSIFIER), x, t)}
    fwd = _conv_dtypes(jax.make_jaxpr(lambda z: bf16.apply(variables, z, t))(x).jaxpr, [])
    grad = _conv_dtypes(jax.make_jaxpr(jax.grad(
        lambda z: jnp.sum(bf16.apply(variables, z, t))))(x).jaxpr, [])
    assert fwd and set(fwd) == {"bfloat16"}
    assert set(grad) == {"bfloat16"} and len(grad) > len(fwd)  # forward + transposed convs
