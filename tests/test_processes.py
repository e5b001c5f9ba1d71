"""Noise processes against closed forms and numerical integration."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from dg_jax.diffusion import parameterization as PA
from dg_jax.diffusion import processes as P

T = np.linspace(0.01, 0.99, 11)


def test_vp_marginals_match_integrated_sde():
    vp = P.VP()
    for t in T:
        integral, _ = integrate.quad(lambda s: vp.beta_min + s * (vp.beta_max - vp.beta_min), 0, t)
        np.testing.assert_allclose(vp.mean(t), np.exp(-0.5 * integral), rtol=1e-5)
        np.testing.assert_allclose(vp.std(t) ** 2 + vp.mean(t) ** 2, 1.0, rtol=1e-5)
        np.testing.assert_allclose(vp.sigma(t), vp.std(t) / vp.mean(t), rtol=1e-5)
        # d/dt log mean = -beta/2 = -g^2/2
        dlog = jax.grad(lambda s: jnp.log(vp.mean(s)))(jnp.float32(t))
        np.testing.assert_allclose(dlog, -0.5 * vp.g2(t), rtol=1e-4)


@pytest.mark.parametrize("process", [P.VP(), P.VPCosine(), P.VE(), P.EDM()])
def test_sigma_tau_maps_invert(process):
    t = jnp.asarray(T * process.t_max, jnp.float32)
    np.testing.assert_allclose(process.t_from_sigma(process.sigma(t)), t, rtol=1e-4, atol=1e-5)


def test_vp_cosine_matches_discrete_iddpm_schedule():
    num = 1000
    s = 0.008
    f = lambda u: np.cos((u / num + s) / (1 + s) * np.pi / 2) ** 2
    alpha_bar_discrete = np.array([f(i + 1) / f(0) for i in range(num - 10)])
    proc = P.VPCosine()
    t = (np.arange(num - 10) + 1) / num
    np.testing.assert_allclose(proc.alpha_bar(jnp.asarray(t)), alpha_bar_discrete, rtol=2e-4)
    g2 = jax.vmap(jax.grad(lambda u: -jnp.log(proc.alpha_bar(u))))(jnp.asarray(t[:500]))
    np.testing.assert_allclose(proc.g2(jnp.asarray(t[:500])), g2, rtol=1e-3)


def test_ve_endpoints_and_perturbation_moments():
    ve = P.VE(sigma_min=0.01, sigma_max=50.0)
    np.testing.assert_allclose([ve.sigma(0.0), ve.sigma(1.0)], [0.01, 50.0], rtol=1e-6)
    vp = P.VP()
    key = jax.random.PRNGKey(0)
    x0 = jnp.full((200000, 1), 2.0)
    t = jnp.full((200000,), 0.3)
    xt = P.perturb(vp, x0, t, jax.random.normal(key, x0.shape))
    np.testing.assert_allclose(xt.mean(), 2.0 * vp.mean(0.3), atol=5e-3)
    np.testing.assert_allclose(xt.std(), vp.std(0.3), rtol=5e-3)


def test_sigma_to_vp_is_dg_map():
    sigma = jnp.asarray([0.01, 0.5, 3.0, 80.0])
    x = jnp.ones((4, 2))
    x_vp, tau, mean = P.sigma_to_vp(sigma, x)
    np.testing.assert_allclose(mean, 1 / np.sqrt(1 + np.asarray(sigma) ** 2), rtol=1e-5)
    # DG's compute_tau formula, written out
    b0, b1 = 0.1, 20.0
    ref = (-b0 + np.sqrt(b0**2 + 2 * (b1 - b0) * np.log(1 + np.asarray(sigma) ** 2))) / (b1 - b0)
    np.testing.assert_allclose(tau, ref, rtol=5e-4)  # float32 cancellation at small sigma
    chex.assert_shape(x_vp, (4, 2))


def test_importance_time_density_is_normalised_and_matches_histogram():
    vp = P.VP()
    z, _ = integrate.quad(lambda t: float(P.vp_importance_density(t, vp)), 1e-5, 1.0, limit=200)
    np.testing.assert_allclose(z, 1.0, rtol=1e-3)
    t = np.asarray(P.vp_importance_time(jax.random.PRNGKey(1), (400000,), vp))
    assert t.min() >= 1e-5 and t.max() <= 1.0
    hist, edges = np.histogram(t, bins=20, range=(0.05, 1.0))
    centers = 0.5 * (edges[1:] + edges[:-1])
    expected = np.asarray(P.vp_importance_density(jnp.asarray(centers), vp)) * (edges[1] - edges[0])
    np.testing.assert_allclose(hist / len(t), expected, rtol=0.05)


def test_parameterization_round_trips():
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (5, 3))
    d = jax.random.normal(jax.random.fold_in(key, 1), (5, 3))
    sigma = jnp.linspace(0.1, 3, 5)
    s = PA.denoiser_to_score(d, x, sigma)
    np.testing.assert_allclose(PA.score_to_denoiser(s, x, sigma), d, rtol=1e-5, atol=1e-5)
    e = PA.denoiser_to_eps(d, x, sigma)
    np.testing.assert_allclose(PA.eps_to_denoiser(e, x, sigma), d, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(e, -sigma[:, None] * s, rtol=1e-5)


def test_preconditioning_coefficients():
    sigma = jnp.asarray([0.5, 2.0])
    c = PA.preconditioning("edm", sigma)
    # EDM: c_skip + c_out^2 / sigma_data^2 ... identity c_skip^2 sigma_d^2 ... use defining relations
    np.testing.assert_allclose(c.c_skip, 0.25 / (sigma**2 + 0.25), rtol=1e-6)
    np.testing.assert_allclose(c.c_in * jnp.sqrt(sigma**2 + 0.25), 1.0, rtol=1e-6)
    vp = PA.preconditioning("vp", sigma)
    np.testing.assert_allclose(vp.c_noise / 999, P.VP(0.1, 20.0).t_from_sigma(sigma), rtol=1e-5)
    with pytest.raises(ValueError, match="precond"):
        PA.preconditioning("foo", sigma)


def test_unknown_process_name_is_named():
    with pytest.raises(ValueError, match="unknown process name 'vq'"):
        P.make_process("vq")
