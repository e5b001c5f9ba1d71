"""attention_impl: the fused-attention path computes what the einsum path computes, is chosen
only where cuDNN supports it, and bad settings name the field.

There is no GPU in CI: the fused call is checked with `jax.nn.dot_product_attention`'s XLA
implementation substituted for cuDNN's (same arguments, same layout), so what is tested is the
layout, scale and head split each network hands to the fused kernel."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CLASSIFIER, DHARIWAL, SONG, apply_jit, net_inputs, random_params, rel_err
from dg_jax.models import adm_blocks, attention, edm_layers
from dg_jax.models.adm_flags import classifier_from_flags
from dg_jax.models.edm_unets import DhariwalUNet, SongUNet


@pytest.fixture
def fused_via_xla(monkeypatch):
    """Every layer takes the fused branch, run through XLA instead of cuDNN; counts the calls."""
    calls = []

    def fake_fused(q, k, v, scale):
        calls.append((q.shape, q.dtype, scale))
        return attention.fused_attention(q, k, v, scale, implementation="xla")

    for module in (edm_layers, adm_blocks):
        monkeypatch.setattr(module, "use_fused_attention", lambda impl, *a: impl != "xla")
        monkeypatch.setattr(module, "fused_attention", fake_fused)
    return calls


@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize("jit", [False, True])
def test_adm_qkv_attention_fused_equals_einsum(legacy, jit, fused_via_xla):
    qkv = jax.random.normal(jax.random.PRNGKey(0), (2, 10, 3 * 3 * 8))
    fn = functools.partial(adm_blocks.qkv_attention, num_heads=3, legacy=legacy)
    if jit:
        fn = jax.jit(fn, static_argnames="impl")
    ref = fn(qkv, impl="xla")
    got = fn(qkv, impl="auto")
    assert len(fused_via_xla) == 1 and fused_via_xla[0][0] == (2, 10, 3, 8)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, kwargs", [(SongUNet, SONG), (DhariwalUNet, DHARIWAL)],
                         ids=["SongUNet", "DhariwalUNet"])
@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_edm_unet_fused_attention_equals_einsum(cls, kwargs, dtype, fused_via_xla):
    x, t = net_inputs()
    params = random_params(cls(**kwargs, attention_impl="xla"), x, t)
    ref = apply_jit(cls(**kwargs, compute_dtype=dtype, attention_impl="xla"), {"params": params}, x, t)
    assert not fused_via_xla
    got = apply_jit(cls(**kwargs, compute_dtype=dtype), {"params": params}, x, t)
    assert fused_via_xla and all(c[1] == jnp.dtype(dtype) for c in fused_via_xla)
    assert float(jnp.std(ref)) > 1e-2
    # float32: the same function up to rounding; bfloat16: different rounding of the same one
    assert rel_err(got, ref) < (1e-5 if dtype == "float32" else 0.05)


@pytest.mark.slow
def test_adm_classifier_fused_attention_equals_einsum(fused_via_xla):
    x, t = net_inputs()
    ref_model = classifier_from_flags({**CLASSIFIER, "attention_impl": "xla"})
    model = classifier_from_flags(CLASSIFIER)
    assert model.attention_impl == "auto"
    variables = {"params": random_params(ref_model, x, t)}
    ref = apply_jit(ref_model, variables, x, t)
    assert not fused_via_xla
    got = apply_jit(model, variables, x, t)
    assert len(fused_via_xla) == 2  # the attention block and the attention pool
    assert rel_err(got, ref) < 1e-5
    # the DG gradient goes through the fused call too
    g_ref = jax.jit(jax.grad(lambda z: jnp.sum(ref_model.apply(variables, z, t))))(x)
    g = jax.jit(jax.grad(lambda z: jnp.sum(model.apply(variables, z, t))))(x)
    assert rel_err(g, g_ref) < 1e-4


def test_auto_keeps_the_einsum_path_on_cpu_and_in_float32():
    assert not attention.use_fused_attention("auto", jnp.float32, 64, "f")
    assert not attention.use_fused_attention("auto", jnp.bfloat16, 64, "f")  # CPU backend
    x, t = net_inputs()
    text = jax.jit(lambda p: SongUNet(**SONG, compute_dtype="bfloat16").apply(
        {"params": p}, x, t)).lower(random_params(SongUNet(**SONG), x, t)).as_text()
    assert "cudnn" not in text.lower()


@pytest.fixture
def probe_passes(monkeypatch):
    """The one-time compile probe succeeds (as it would where cuDNN works)."""
    monkeypatch.setattr(attention, "_cudnn_probe", lambda dtype, head_dim: None)


def test_auto_falls_back_when_the_fused_kernel_does_not_compile(monkeypatch):
    """With every static rule met but no working cuDNN (here: a CPU pretending to be an H100),
    the compile probe fails once: 'auto' warns and uses the einsum path, 'cudnn' is an error."""
    monkeypatch.setattr(attention, "_compute_capability", lambda: (9, 0))
    attention._cudnn_probe.cache_clear()
    try:
        with pytest.warns(UserWarning, match="does not compile here"):
            assert not attention.use_fused_attention("auto", jnp.bfloat16, 64, "f")
        assert not attention.use_fused_attention("auto", jnp.bfloat16, 64, "f")  # cached
        with pytest.raises(ValueError, match="f='cudnn' but .* does not compile here"):
            attention.use_fused_attention("cudnn", jnp.bfloat16, 64, "f")
        x, t = net_inputs()
        model = SongUNet(**SONG, compute_dtype="bfloat16")  # head dimension 32: probed anew
        with pytest.warns(UserWarning, match="does not compile here"):
            y = apply_jit(model, {"params": random_params(model, x, t)}, x, t)
        assert bool(jnp.all(jnp.isfinite(y)))
    finally:
        attention._cudnn_probe.cache_clear()


@pytest.mark.parametrize("cc, dtype, head_dim, ok", [
    ((9, 0), jnp.bfloat16, 256, True),    # Hopper: head dims up to 256
    ((8, 0), jnp.bfloat16, 256, False),   # Ampere: up to 128
    ((8, 0), jnp.float16, 128, True),
    ((9, 0), jnp.bfloat16, 12, False),    # not a multiple of 8
    ((7, 5), jnp.bfloat16, 64, False),    # pre-Ampere
    ((9, 0), jnp.float32, 64, False),     # never in float32
    (None, jnp.bfloat16, 64, False),      # not a CUDA GPU
])
def test_fused_attention_applicability(monkeypatch, probe_passes, cc, dtype, head_dim, ok):
    monkeypatch.setattr(attention, "_compute_capability", lambda: cc)
    reason = attention.fused_attention_unsupported(dtype, head_dim)
    assert (reason is None) == ok
    assert attention.use_fused_attention("auto", dtype, head_dim, "f") == ok
    if not ok:
        with pytest.raises(ValueError, match="f='cudnn' but fused attention does not apply"):
            attention.use_fused_attention("cudnn", dtype, head_dim, "f")


def test_bad_attention_impl_names_the_field():
    x, t = net_inputs()
    with pytest.raises(ValueError, match=r"UNetBlock.attention_impl='flash'"):
        jax.eval_shape(lambda: SongUNet(**SONG, attention_impl="flash").init(
            jax.random.PRNGKey(0), x, t))
    with pytest.raises(ValueError, match=r"AttentionBlock.attention_impl='cudnn' but"):
        jax.eval_shape(lambda: classifier_from_flags(
            {**CLASSIFIER, "attention_impl": "cudnn"}).init(jax.random.PRNGKey(0), x, t))


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["auto", "xla"])
def test_pipeline_attention_impl_reaches_the_networks(impl, fused_via_xla):
    """score.attention_impl / disc.attention_impl of an image DG config choose the path."""
    from configs.cifar10_edm_dg import get_config
    from dg_jax.experiments.dg_images import models as M

    config = get_config("smoke")
    config.score.source = "random"
    config.score.attention_impl = config.disc.attention_impl = impl
    precond, params = M.build_score_model(config)
    assert precond.model.attention_impl == impl
    disc = M.build_discriminator(config)
    fused_via_xla.clear()
    r = config.data.resolution
    x = jnp.zeros((2, r, r, config.data.channels))
    labels = jax.nn.one_hot(jnp.arange(2), precond.label_dim) if precond.label_dim else None
    jax.eval_shape(lambda p: precond(p, x, jnp.ones((2,)), labels), params)
    n_score = len(fused_via_xla)
    jax.eval_shape(lambda p: disc.logit(p, x, jnp.full((2,), 0.5)), disc.trainable)
    n_disc = len(fused_via_xla) - n_score
    if impl == "xla":
        assert n_score == n_disc == 0
    else:
        assert n_score > 0 and n_disc > 0
