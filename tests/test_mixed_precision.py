"""compute_dtype='bfloat16': float32 parameters, bfloat16 activations; outputs close to float32."""
import jax
import jax.numpy as jnp
import pytest

from conftest import CLASSIFIER, DHARIWAL, SONG, apply_jit, net_inputs, random_params, rel_err
from dg_jax.models.adm_flags import classifier_from_flags
from dg_jax.models.edm_precond import edm_precond_from_kwargs
from dg_jax.models.edm_unets import DhariwalUNet, SongUNet
from dg_jax.models.precision import compute_dtype


@pytest.mark.parametrize("cls, kwargs", [(SongUNet, SONG), (DhariwalUNet, DHARIWAL)],
                         ids=["SongUNet", "DhariwalUNet"])
@pytest.mark.slow
def test_edm_unet_bfloat16_close_to_float32(cls, kwargs):
    x, t = net_inputs()
    f32 = cls(**kwargs)
    params = random_params(f32, x, t)
    bf16 = cls(**kwargs, compute_dtype="bfloat16")
    # same parameter tree, all float32
    shapes = jax.eval_shape(lambda: bf16.init(jax.random.PRNGKey(1), x, t))["params"]
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(params)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(shapes))
    y32 = apply_jit(f32, {"params": params}, x, t)
    y16 = apply_jit(bf16, {"params": params}, x, t)
    assert y16.dtype == jnp.float32 and y16.shape == y32.shape  # output in the input's dtype
    assert float(jnp.std(y32)) > 1e-2
    assert rel_err(y16, y32) < 0.05


def test_bfloat16_actually_changes_the_computation():
    x, t = net_inputs()
    f32, bf16 = SongUNet(**SONG), SongUNet(**SONG, compute_dtype="bfloat16")
    params = random_params(f32, x, t)
    y32 = apply_jit(f32, {"params": params}, x, t)
    y16 = apply_jit(bf16, {"params": params}, x, t)
    assert rel_err(y16, y32) > 1e-5  # not silently float32
    text = jax.jit(lambda p: bf16.apply({"params": p}, x, t)).lower(params).as_text()
    assert "bf16" in text


@pytest.mark.slow
def test_precond_bfloat16_keeps_float32_state():
    kw = dict(img_resolution=8, img_channels=3, model_type="SongUNet", model_channels=16,
              channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], dropout=0.0)
    p32 = edm_precond_from_kwargs("VPPrecond", kw)
    p16 = edm_precond_from_kwargs("VPPrecond", {**kw, "compute_dtype": "bfloat16"})
    x, _ = net_inputs()
    params = random_params(p32.model, x, jnp.zeros((4,)))
    sigma = jnp.full((4,), 2.0)
    d32, d16 = jax.jit(p32)(params, x, sigma), jax.jit(p16)(params, x, sigma)
    assert d16.dtype == jnp.float32
    assert rel_err(d16, d32) < 0.05


@pytest.mark.slow
def test_adm_classifier_bfloat16_close_to_float32():
    x, t = net_inputs()
    f32 = classifier_from_flags(CLASSIFIER, dg_time=True)
    bf16 = classifier_from_flags({**CLASSIFIER, "compute_dtype": "bfloat16"}, dg_time=True)
    assert bf16.compute_dtype == "bfloat16" and f32.compute_dtype is None
    variables = {"params": random_params(f32, x, t)}
    y32, y16 = apply_jit(f32, variables, x, t), apply_jit(bf16, variables, x, t)
    assert float(jnp.std(y32)) > 1e-3
    assert rel_err(y16, y32) < 0.05
    f32_feat = apply_jit(f32, variables, x, t, feature=True)
    f16_feat = apply_jit(bf16, variables, x, t, feature=True)
    assert f16_feat.dtype == jnp.float32
    assert rel_err(f16_feat, f32_feat) < 0.05
    # the DG gradient through the bfloat16 classifier stays close too
    g32 = jax.jit(jax.grad(lambda z: jnp.sum(f32.apply(variables, z, t))))(x)
    g16 = jax.jit(jax.grad(lambda z: jnp.sum(bf16.apply(variables, z, t))))(x)
    assert g16.dtype == jnp.float32
    assert rel_err(g16, g32) < 0.1


def test_unknown_compute_dtype_names_the_field():
    x, t = net_inputs()
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
    assert rel_err(b, a) < 0.05
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
    x, t = net_inputs()
    bf16 = classifier_from_flags({**CLASSIFIER, "compute_dtype": "bfloat16"}, dg_time=True)
    variables = {"params": random_params(classifier_from_flags(CLASSIFIER), x, t)}
    fwd = _conv_dtypes(jax.make_jaxpr(lambda z: bf16.apply(variables, z, t))(x).jaxpr, [])
    grad = _conv_dtypes(jax.make_jaxpr(jax.grad(
        lambda z: jnp.sum(bf16.apply(variables, z, t))))(x).jaxpr, [])
    assert fwd and set(fwd) == {"bfloat16"}
    assert set(grad) == {"bfloat16"} and len(grad) > len(fwd)  # forward + transposed convs
