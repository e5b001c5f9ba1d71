"""EDM Heun/Euler samplers with exact Gaussian denoisers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.parallel import data_sharding, make_mesh
from dg_jax.samplers.edm import edm_sigma_steps, euler_sample, get_sampler, heun_sample

MEAN = jnp.asarray([1.0, -2.0])
COV = jnp.asarray([[1.0, 0.6], [0.6, 0.5]])


def gaussian_denoiser(mean, cov):
    """E[x0 | x] for x0 ~ N(mean, cov), x = x0 + sigma n: mean + cov (cov + s^2 I)^-1 (x - mean)."""
    def denoise(x, sigma, labels=None):
        def one(xi, si):
            return mean + cov @ jnp.linalg.solve(cov + si**2 * jnp.eye(2), xi - mean)
        return jax.vmap(one)(x, sigma)
    return denoise


def test_sigma_steps_match_edm_formula():
    s = edm_sigma_steps(18)
    assert s.shape == (19,) and s[-1] == 0.0
    np.testing.assert_allclose(s[0], 80.0)
    np.testing.assert_allclose(s[17], 0.002)
    i = 5
    ref = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    np.testing.assert_allclose(s[i], ref)


@pytest.mark.parametrize("name", ["heun", "euler"])
def test_sampler_reproduces_gaussian_mean_and_covariance(name):
    steps = 40 if name == "heun" else 400
    latents = jax.random.normal(jax.random.PRNGKey(0), (20000, 2))
    x = get_sampler(name)(gaussian_denoiser(MEAN, COV), latents, edm_sigma_steps(steps))
    x = np.asarray(x)
    np.testing.assert_allclose(x.mean(0), MEAN, atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.04)


def test_stochastic_churn_sampler_also_reproduces_gaussian():
    latents = jax.random.normal(jax.random.PRNGKey(1), (20000, 2))
    x = heun_sample(gaussian_denoiser(MEAN, COV), latents, edm_sigma_steps(40),
                    rng=jax.random.PRNGKey(2), S_churn=4.0, S_min=0.05, S_max=50.0)
    x = np.asarray(x)
    np.testing.assert_allclose(x.mean(0), MEAN, atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), COV, atol=0.04)
    with pytest.raises(ValueError, match="rng"):
        heun_sample(gaussian_denoiser(MEAN, COV), latents, edm_sigma_steps(4), S_churn=1.0)


def test_jit_and_eager_agree_and_trajectory_ends_at_sample():
    latents = jax.random.normal(jax.random.PRNGKey(3), (64, 2))
    den = gaussian_denoiser(MEAN, COV)
    sig = edm_sigma_steps(10)
    eager = heun_sample(den, latents, sig)
    jitted, traj = jax.jit(lambda z: heun_sample(den, z, sig, return_trajectory=True))(latents)
    np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-5)
    assert traj.shape == (10, 64, 2)
    np.testing.assert_allclose(traj[-1], jitted)


def test_compile_does_not_unroll_steps():
    """The step is a scan body: apart from the step tables' constants, the lowered program is
    identical for 8 and 64 steps."""
    import re

    den = gaussian_denoiser(MEAN, COV)
    latents = jnp.zeros((4, 2))
    texts = [re.sub(r"\[\d+:\d+\]|dense<[^>]*>", "...", re.sub(r"tensor<\d+x", "tensor<Nx",
             jax.jit(lambda z, n=n: heun_sample(den, z, edm_sigma_steps(n))).lower(latents)
             .as_text())) for n in (8, 64)]
    assert texts[0] == texts[1]


def test_sharded_sampler_equals_single_device():
    assert jax.device_count() == 8
    den = gaussian_denoiser(MEAN, COV)
    sig = edm_sigma_steps(12)
    latents = jax.random.normal(jax.random.PRNGKey(4), (64, 2))
    fn = jax.jit(lambda z, k: heun_sample(den, z, sig, rng=k, S_churn=5.0))
    key = jax.random.PRNGKey(5)
    outs = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = make_mesh(devices)
        z = jax.device_put(latents, data_sharding(mesh))
        out = fn(z, key)
        assert len(out.sharding.device_set) == len(devices)
        outs.append(np.asarray(out))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)


def test_euler_alias_and_unknown_sampler():
    den = gaussian_denoiser(MEAN, COV)
    z = jnp.ones((2, 2))
    np.testing.assert_allclose(euler_sample(den, z, edm_sigma_steps(5)),
                               heun_sample(den, z, edm_sigma_steps(5), euler=True))
    with pytest.raises(ValueError, match="sampler.name"):
        get_sampler("dpm")
