"""The compiled sampling loops move nothing between host and device: after compilation, a call
on device-resident inputs runs under jax.transfer_guard('disallow')."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.diffusion.iddpm import create_gaussian_diffusion
from dg_jax.guidance.discriminator import dg_correction_fn
from dg_jax.samplers.ddpm import ddim_sample, ddpm_sample
from dg_jax.samplers.edm import edm_sigma_steps, heun_sample
from dg_jax.samplers.edm_gpp import edm_gpp_sample


def _denoise(x, sigma, labels=None):
    s = jnp.reshape(sigma, (-1,) + (1,) * (x.ndim - 1))
    return x * 0.25 / (0.25 + s**2)


def _logit(x_vp, tau, labels=None):
    return jnp.sum(jnp.tanh(x_vp.reshape(x_vp.shape[0], -1)), -1) * (1.0 + tau)


def _guarded(fn, *args):
    """Compile and run once unguarded, then run again with every implicit transfer refused."""
    args = jax.device_put(args)
    expected = jax.block_until_ready(fn(*args))
    with jax.transfer_guard("disallow"):
        out = jax.block_until_ready(fn(*args))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(expected))


def test_edm_heun_with_churn_has_no_host_transfer():
    sigmas = jnp.asarray(edm_sigma_steps(8))
    fn = jax.jit(lambda z, key: heun_sample(_denoise, z * 80.0, sigmas, rng=key, S_churn=10.0,
                                            S_max=50.0))
    _guarded(fn, jnp.ones((4, 8, 8, 1)), jax.random.PRNGKey(0))


def test_edm_gpp_with_dg_has_no_host_transfer():
    sigmas = jnp.asarray(edm_sigma_steps(8))
    corr = dg_correction_fn(_logit, time_min=0.01, with_log_ratio=True)
    fn = jax.jit(lambda z, key: edm_gpp_sample(_denoise, z * 80.0, sigmas, corr,
                                               weight_1st=2.0, boosting=True, rng=key))
    _guarded(fn, jnp.ones((4, 8, 8, 1)), jax.random.PRNGKey(0))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_ddpm_and_ddim_have_no_host_transfer(sampler):
    diffusion = create_gaussian_diffusion(steps=20, noise_schedule="cosine")

    def model_fn(x, t, y=None):
        return jnp.zeros_like(x) + 0.01 * x

    if sampler == "ddpm":
        fn = jax.jit(lambda z, key: ddpm_sample(diffusion, model_fn, z, rng=key))
    else:
        fn = jax.jit(lambda z, key: ddim_sample(diffusion, model_fn, z))
    _guarded(fn, jnp.ones((4, 8, 8, 1)), jax.random.PRNGKey(0))


def test_the_guard_catches_a_host_input():
    """The control: the same guarded call with a host array as input is refused."""
    sigmas = jnp.asarray(edm_sigma_steps(4))
    fn = jax.jit(lambda z: heun_sample(_denoise, z * 80.0, sigmas))
    fn(jnp.ones((2, 4, 4, 1)))
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="[Dd]isallowed"):
        fn(np.ones((2, 4, 4, 1), np.float32))
