"""GPU-only checks (marker `gpu`): what only an accelerator can show.

They skip without a GPU. `python -m launch.gpu_check` runs them on the GPU (JAX_PLATFORMS=cuda,cpu
so the CPU stays available as the float32 reference); its --smoke mode sets
DG_JAX_GPU_TESTS_ON_CPU=1, which runs the same bodies on the CPU with attention_impl='auto'
(the einsum path there) so the code is exercised in CI. On a GPU:
- cuDNN's fused attention (attention_impl='cudnn') against the einsum path ('xla') in bfloat16,
  forward and input gradient: SongUNet, DhariwalUNet, the ADM UNet, the ADM classifier and DiT;
- the bfloat16 EDM-G++ sampler (score network and discriminator in bfloat16) against float32
  from the same latents: pixel statistics, and the digits-CNN Frechet distance between the two
  sample sets against the spread between two float32 seeds;
- the DG gradient computed on the GPU against the CPU's float32 value;
- the float32 sampler sharded over a mesh of the GPUs against the unsharded run.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CLASSIFIER, DHARIWAL, SONG, net_inputs, random_params, rel_err
from dg_jax.eval.evaluate import digits_backend
from dg_jax.eval.fid import fid_from_features
from dg_jax.guidance.discriminator import dg_correction_fn
from dg_jax.models.adm import UNetModel
from dg_jax.models.adm_flags import classifier_from_flags
from dg_jax.models.dg_discriminator import discriminator_from_spec
from dg_jax.models.dit import DiT
from dg_jax.models.edm_precond import edm_precond_from_kwargs
from dg_jax.models.edm_unets import DhariwalUNet, SongUNet
from dg_jax.parallel import data_sharding, make_mesh
from dg_jax.samplers.edm import edm_sigma_steps
from dg_jax.samplers.edm_gpp import make_edm_gpp_sampler

pytestmark = pytest.mark.gpu
ON_CPU = os.environ.get("DG_JAX_GPU_TESTS_ON_CPU") == "1"


@pytest.fixture(scope="module")
def accel():
    """(device, attention_impl of the fused path): a GPU with 'cudnn', or in smoke mode the CPU
    with 'auto'; otherwise the test skips."""
    gpus = [d for d in jax.devices() if d.platform == "gpu"] if not ON_CPU else []
    if gpus:
        return gpus[0], "cudnn"
    if ON_CPU:
        return jax.devices("cpu")[0], "auto"
    pytest.skip("no GPU (set JAX_PLATFORMS=cuda,cpu on a GPU machine; launch.gpu_check does)")


def _on(device, tree):
    return jax.device_put(tree, device)


def _fused_vs_einsum(accel, make, args, params_args):
    device, impl = accel
    ref_model, model = make("xla"), make(impl)
    params = random_params(make("xla"), *params_args)
    variables, args = _on(device, {"params": params}), _on(device, args)

    def out(m):
        return jax.jit(lambda v, *a: m.apply(v, *a))(variables, *args)

    def grad(m):
        return jax.jit(jax.grad(lambda v, x, *a: jnp.sum(m.apply(v, x, *a) ** 2), argnums=1))(
            variables, *args)

    y_ref, y = out(ref_model), out(model)
    g_ref, g = grad(ref_model), grad(model)
    assert float(jnp.std(y_ref)) > 1e-2
    assert bool(jnp.all(jnp.isfinite(y))) and bool(jnp.all(jnp.isfinite(g)))
    # bfloat16 both ways: the same function with different rounding
    assert rel_err(y, y_ref) < 0.05
    assert rel_err(g, g_ref) < 0.1


@pytest.mark.parametrize("cls, kwargs", [(SongUNet, SONG), (DhariwalUNet, DHARIWAL)],
                         ids=["SongUNet", "DhariwalUNet"])
def test_edm_unet_cudnn_attention_equals_einsum_in_bfloat16(accel, cls, kwargs):
    x, t = net_inputs()
    _fused_vs_einsum(accel, lambda impl: cls(**kwargs, compute_dtype="bfloat16",
                                             attention_impl=impl), (x, t), (x, t))


def test_adm_unet_cudnn_attention_equals_einsum_in_bfloat16(accel):
    x, t = net_inputs()
    y = jnp.arange(4) % 5
    kw = dict(image_size=8, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
              attention_resolutions=(2,), channel_mult=(1, 2), num_classes=5, num_heads=2,
              use_scale_shift_norm=True, resblock_updown=True, compute_dtype="bfloat16")
    _fused_vs_einsum(accel, lambda impl: UNetModel(**kw, attention_impl=impl),
                     (x, 999 * t, y), (x, t, y))


def test_adm_classifier_cudnn_attention_equals_einsum_in_bfloat16(accel):
    x, t = net_inputs()
    _fused_vs_einsum(accel, lambda impl: classifier_from_flags(
        {**CLASSIFIER, "out_channels": 16, "compute_dtype": "bfloat16", "attention_impl": impl}),
        (x, t), (x, t))


def test_dit_cudnn_attention_equals_einsum_in_bfloat16(accel):
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 4))
    t, y = jnp.asarray([0, 250, 500, 999]), jnp.asarray([0, 1, 2, 10])  # 10: the null label
    kw = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=64, depth=2, num_heads=4,
              num_classes=10, compute_dtype="bfloat16")
    _fused_vs_einsum(accel, lambda impl: DiT(**kw, attention_impl=impl), (x, t, y), (x, t, y))


# ---------------------------------------------------------------- the sampler, bf16 vs f32
RES, CH = 8, 1
PRECOND = dict(img_resolution=RES, img_channels=CH, model_type="SongUNet", model_channels=16,
               channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4], dropout=0.0)
HEAD = dict(image_size=8, classifier_use_fp16=False, classifier_width=64, classifier_depth=1,
            classifier_attention_resolutions="", out_channels=1, in_channels=64,
            classifier_pool="attention", classifier_use_scale_shift_norm=True,
            classifier_resblock_updown=True)
DISC = dict(kind="adm", conditional=False,
            classifier_flags={**CLASSIFIER, "in_channels": CH, "out_channels": 10,
                              "classifier_channel_mult": "1"},
            head_flags=HEAD)


def _sampler(dtype, impl, weight=1.0, steps=8):
    precond = edm_precond_from_kwargs("VPPrecond", {**PRECOND, "compute_dtype": dtype,
                                                    "attention_impl": impl})
    base = edm_precond_from_kwargs("VPPrecond", PRECOND)
    x = jnp.zeros((1, RES, RES, CH))
    params = random_params(base.model, x, jnp.zeros((1,)), seed=3)
    disc = discriminator_from_spec({**DISC, "compute_dtype": dtype, "attention_impl": impl},
                                   (RES, RES, CH), 0, jax.random.PRNGKey(1),
                                   jax.random.PRNGKey(2))
    corr = dg_correction_fn(disc.bind(disc.trainable), time_min=0.01, time_max=1.0,
                            with_log_ratio=True)
    return make_edm_gpp_sampler(lambda z, s, y: precond(params, z, s, y),
                                edm_sigma_steps(steps), corr, weight_1st=weight)


def test_bfloat16_edm_gpp_sampler_matches_float32(accel):
    device, impl = accel
    n = 256 if ON_CPU else 2048
    lat = [jax.device_put(jax.random.normal(jax.random.PRNGKey(s), (n, RES, RES, CH)), device)
           for s in (0, 1)]
    key = jax.random.PRNGKey(5)
    f32 = _sampler("float32", "xla")
    bf16 = _sampler("bfloat16", impl)
    a, b = np.asarray(f32(lat[0], None, key)), np.asarray(bf16(lat[0], None, key))
    other = np.asarray(f32(lat[1], None, key))
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(b.mean(), a.mean(), atol=0.05 * a.std())
    np.testing.assert_allclose(b.std(), a.std(), rtol=0.05)
    backend = digits_backend(resolution=RES, steps=100 if ON_CPU else 600)
    feats = [backend.extract([np.round(np.clip(z + 1, 0, 2) * 127.5).astype(np.uint8)])[0]
             for z in (a, b, other)]
    fd_dtype = fid_from_features(feats[0], feats[1])
    fd_seed = fid_from_features(feats[0], feats[2])
    assert fd_dtype <= max(fd_seed, 1e-6) * 1.5, (fd_dtype, fd_seed)


def test_dg_gradient_on_the_gpu_equals_cpu_float32(accel):
    device, _ = accel
    disc = discriminator_from_spec({**DISC, "compute_dtype": "float32", "attention_impl": "xla"},
                                   (RES, RES, CH), 0, jax.random.PRNGKey(1),
                                   jax.random.PRNGKey(2))
    corr = dg_correction_fn(disc.bind(disc.trainable), time_min=0.0, time_max=1.0)
    x = jax.random.normal(jax.random.PRNGKey(0), (8, RES, RES, CH))
    sigma = jnp.linspace(0.05, 5.0, 8)
    cpu = jax.devices("cpu")[0]
    with jax.default_matmul_precision("highest"):
        ref = jax.jit(corr)(_on(cpu, x), _on(cpu, sigma), None)
        got = jax.jit(corr)(_on(device, x), _on(device, sigma), None)
    assert float(jnp.max(jnp.abs(ref))) > 0
    assert rel_err(np.asarray(got), np.asarray(ref)) < 1e-4


def test_sharded_sampler_on_the_gpus_equals_unsharded(accel):
    device, impl = accel
    devices = [d for d in jax.devices() if d.platform == device.platform]
    n = 8 * len(devices)
    latents = jax.random.normal(jax.random.PRNGKey(0), (n, RES, RES, CH))
    # float32: a per-device batch changes bfloat16 rounding (other kernels), not the function
    sampler, key = _sampler("float32", "xla"), jax.random.PRNGKey(5)
    single = np.asarray(sampler(_on(device, latents), None, key))
    mesh = make_mesh(devices)
    sharded = sampler(jax.device_put(latents, data_sharding(mesh)), None, key)
    assert sharded.sharding.is_equivalent_to(data_sharding(mesh), latents.ndim)
    assert rel_err(np.asarray(sharded), single) < 1e-4
