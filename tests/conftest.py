"""Test set-up: 8 fake CPU devices, configured before JAX initialises its backends."""
import os
import pathlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# `pytest --nbmake tests notebooks` runs the notebooks at smoke size: their kernels inherit it
os.environ.setdefault("DG_JAX_NOTEBOOK_SMOKE", "1")
import chex  # noqa: E402

chex.set_n_cpu_devices(8)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dg_jax.compile_cache import enable_compilation_cache  # noqa: E402
from dg_jax.diffusion.processes import VP  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
# The persistent compilation cache, as the entry points use it ($DG_JAX_COMPILATION_CACHE or
# ~/.cache/dg_jax/jax; 'off' disables): reruns, and the launch scripts the tests start, read
# their programs back instead of compiling them again.
enable_compilation_cache()

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs, multi-process tests, parity on "
                            "the real fixtures and the costliest network checks (deselect with "
                            "-m 'not slow' for a fast loop; the README's test command runs all)")
    config.addinivalue_line("markers", "gpu: needs a GPU (skipped without one; python -m "
                            "launch.gpu_check runs them)")


@pytest.fixture(scope="session")
def shared_fixtures():
    """`../shared/fixtures` beside the checkout; tests that need it skip (and say so) when absent."""
    path = SHARED / "fixtures"
    if not path.is_dir():
        pytest.skip(f"shared fixtures not found at {path}: parity tests skipped")
    return path


# ------------------------------------------------------------------ shared test helpers
# Test modules import these from conftest (no test module imports another).

# Two 2-D Gaussians, p_r and p_g, with closed-form diffused densities, denoisers and the optimal
# discriminator: the guidance and EDM-G++ tests' exact references.
VPP = VP()


def gauss_logpdf(x, mean, cov):
    d = x - mean
    sol = jnp.linalg.solve(cov, d.T).T
    return -0.5 * jnp.sum(d * sol, -1) - 0.5 * jnp.linalg.slogdet(2 * jnp.pi * cov)[1]


M_R, C_R = jnp.asarray([1.0, -1.0]), jnp.asarray([[0.5, 0.2], [0.2, 0.3]])
M_G, C_G = jnp.asarray([0.0, 0.5]), jnp.asarray([[1.0, -0.3], [-0.3, 0.8]])


def diffused_logpdf(mean, cov):
    return lambda x, s: jax.vmap(
        lambda xi, si: gauss_logpdf(xi[None], mean, cov + si**2 * jnp.eye(2))[0])(x, s)


def gaussian_denoiser(mean, cov):
    def denoise(x, sigma, labels=None):
        return jax.vmap(lambda xi, si: mean + cov @ jnp.linalg.solve(cov + si**2 * jnp.eye(2),
                                                                     xi - mean))(x, sigma)
    return denoise


def exact_logit_fn(x_vp, tau, labels=None):
    """The optimal discriminator's logit log(p_r^tau / p_g^tau), written in VP coordinates."""
    mean = VPP.mean(tau)
    sigma = VPP.sigma(tau)
    x = x_vp / mean[:, None]
    return diffused_logpdf(M_R, C_R)(x, sigma) - diffused_logpdf(M_G, C_G)(x, sigma)


# Small networks and random weights for the mixed-precision and attention tests.
SONG = dict(img_resolution=8, in_channels=3, out_channels=3, model_channels=16,
            channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,), dropout=0.0)
DHARIWAL = dict(img_resolution=8, in_channels=3, out_channels=3, model_channels=32,
                channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,), dropout=0.0)
CLASSIFIER = dict(image_size=8, classifier_use_fp16=False, classifier_width=64,
                  classifier_depth=1, classifier_attention_resolutions="4",
                  classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                  classifier_pool="attention", out_channels=1)


def random_params(module, *args, seed=0):
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


def apply_jit(module, variables, *args, **kwargs):
    """module.apply under jit (one compiled program instead of hundreds of eager ops)."""
    return jax.jit(lambda v, *a: module.apply(v, *a, **kwargs))(variables, *args)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.sqrt(np.mean((a - b) ** 2)) / (np.sqrt(np.mean(b ** 2)) + 1e-12))


def net_inputs(batch=4, res=8, ch=3):
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return jax.random.normal(k1, (batch, res, res, ch)), jax.random.uniform(k2, (batch,))
