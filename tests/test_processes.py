"""Noise processes against closed forms and numerical integration."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from dg_jax.diffusion import parameterization as PA
from dg_jax.diffusion import processes as P
from dg_jax.models import edm_precond as EP

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


def _coefficients(precond, sigma, jit):
    fn = jax.jit(precond.coefficients) if jit else precond.coefficients
    return tuple(jnp.broadcast_to(c, sigma.shape) for c in fn(sigma))


@pytest.mark.parametrize("jit", [False, True])
def test_preconditioning_coefficients_match_closed_forms(jit):
    """models/edm_precond.py holds the one implementation of EDM's Table 1 coefficients."""
    sigma = jnp.asarray([0.002, 0.5, 2.0, 80.0], jnp.float32).reshape(-1, 1, 1, 1)
    s, sd = np.asarray(sigma, np.float64), 0.25
    net = dict(model=None, img_resolution=8, img_channels=3)
    edm = _coefficients(EP.EDMPrecond(**net, sigma_data=sd), sigma, jit)
    chex.assert_trees_all_close(edm, (sd**2 / (s**2 + sd**2), s * sd / np.sqrt(s**2 + sd**2),
                                      1 / np.sqrt(s**2 + sd**2), np.log(s) / 4), rtol=1e-6)
    ve = _coefficients(EP.VEPrecond(**net), sigma, jit)
    chex.assert_trees_all_close(ve, (np.ones_like(s), s, np.ones_like(s), np.log(s / 2)),
                                rtol=1e-6)
    vp_precond = EP.VPPrecond(**net)
    vp = _coefficients(vp_precond, sigma, jit)
    chex.assert_trees_all_close(vp[:3], (np.ones_like(s), -s, 1 / np.sqrt(s**2 + 1)), rtol=1e-6)
    # c_noise = (M - 1) t with t the VP time of sigma (beta 0.1 -> 20), and sigma(t) inverts it;
    # float32 log(1 + sigma^2), as EDM computes it, loses the smallest sigma to cancellation
    t_closed = (np.sqrt(0.1**2 + 2 * 19.9 * np.log1p(s**2)) - 0.1) / 19.9
    chex.assert_trees_all_close(vp[3][1:], 999 * t_closed[1:], rtol=1e-5)
    chex.assert_trees_all_close(vp[3][1:] / 999, P.VP(0.1, 20.0).t_from_sigma(sigma[1:]),
                                rtol=1e-5)
    t = np.asarray(vp[3][1:3] / 999).reshape(-1)
    np.testing.assert_allclose(vp_precond.sigma(t), s[1:3].reshape(-1), rtol=1e-4)
    # iDDPM: VP's scalings, c_noise = M - 1 - j for sigma at (or next to) the table entry u_j
    iddpm_precond = EP.iDDPMPrecond(**net)
    j = np.asarray([999, 500, 100, 3])
    u = jnp.asarray(iddpm_precond.u[j] * np.float32(1 + 1e-4)).reshape(-1, 1, 1, 1)
    iddpm = _coefficients(iddpm_precond, u, jit)
    uu = np.asarray(u, np.float64)
    chex.assert_trees_all_close(iddpm, (np.ones_like(uu), -uu, 1 / np.sqrt(uu**2 + 1),
                                        (999 - j).reshape(-1, 1, 1, 1).astype(np.float32)),
                                rtol=1e-6)


class _ScaleByNoise:
    """Stands in for the U-Net: F(x_in, c_noise) = c_noise * x_in (2x the channels for iDDPM)."""

    def __init__(self, copies=1):
        self.copies = copies

    def apply(self, variables, x_in, c_noise, labels, **unused):
        f = c_noise.reshape(-1, 1, 1, 1) * x_in
        return jnp.concatenate([f] + [jnp.full_like(f, 7.0)] * (self.copies - 1), axis=-1)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("kind", ["EDMPrecond", "VEPrecond", "VPPrecond", "iDDPMPrecond"])
def test_preconditioned_denoiser_is_c_skip_x_plus_c_out_F(kind, jit):
    cls = EP.PRECOND_CLASSES[kind]
    precond = cls(model=_ScaleByNoise(2 if kind == "iDDPMPrecond" else 1), img_resolution=2,
                  img_channels=3)
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 2, 2, 3))
    sigma = jnp.asarray([0.01, 0.3, 1.5, 20.0])
    fn = jax.jit(lambda x, s: precond(None, x, s)) if jit else (lambda x, s: precond(None, x, s))
    denoised = fn(x, sigma)
    c_skip, c_out, c_in, c_noise = _coefficients(precond, sigma.reshape(-1, 1, 1, 1), False)
    chex.assert_shape(denoised, x.shape)
    chex.assert_type(denoised, jnp.float32)
    chex.assert_trees_all_close(denoised, c_skip * x + c_out * (c_noise * (c_in * x)),
                                rtol=1e-5, atol=1e-6)
    # the boundary's conversions of that denoiser
    eps = PA.denoiser_to_eps(denoised, x, sigma)
    chex.assert_trees_all_close(eps, (x - denoised) / sigma[:, None, None, None], rtol=1e-6)
    chex.assert_trees_all_close(PA.denoiser_to_score(denoised, x, sigma),
                                -eps / sigma[:, None, None, None], rtol=1e-5)


def test_unknown_process_name_is_named():
    with pytest.raises(ValueError, match="unknown process name 'vq'"):
        P.make_process("vq")
