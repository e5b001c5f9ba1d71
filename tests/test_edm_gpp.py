"""EDM-G++ (DG's sampler) against the generic Heun sampler and closed forms."""
import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.guidance.discriminator import dg_correction_fn, discriminator_guidance
from dg_jax.samplers.edm import edm_sigma_steps, heun_sample
from dg_jax.samplers.edm_gpp import edm_gpp_sample
from test_guidance import C_G, C_R, M_G, M_R, exact_logit_fn, gaussian_denoiser

WRONG = gaussian_denoiser(M_G, C_G)


def test_first_order_dg_equals_heun_with_first_order_guidance():
    z = jax.random.normal(jax.random.PRNGKey(0), (64, 2), jnp.float32)
    sig = edm_sigma_steps(12)
    corr = dg_correction_fn(exact_logit_fn, time_min=0.01, with_log_ratio=True)
    gpp = edm_gpp_sample(WRONG, z, sig, corr, weight_1st=1.5)
    ref = heun_sample(WRONG, z, sig, guidance=discriminator_guidance(exact_logit_fn, 1.5,
                                                                     time_min=0.01),
                      second_order_guidance=None)
    np.testing.assert_allclose(gpp, ref, rtol=1e-4, atol=1e-4)


def test_second_order_dg_with_exact_discriminator_samples_true_gaussian():
    z = jax.random.normal(jax.random.PRNGKey(1), (20000, 2))
    corr = dg_correction_fn(exact_logit_fn, with_log_ratio=True)
    x, log_ratios = jax.jit(lambda z: edm_gpp_sample(WRONG, z, edm_sigma_steps(40), corr,
                                                     weight_1st=1.0, weight_2nd=1.0,
                                                     return_log_ratio=True))(z)
    x = np.asarray(x)
    np.testing.assert_allclose(x.mean(0), M_R, atol=0.03)
    np.testing.assert_allclose(np.cov(x.T), C_R, atol=0.03)
    assert log_ratios.shape == (40, 20000) and np.all(np.isfinite(log_ratios))


def test_boosting_doubles_negative_log_ratio_guidance():
    """One Euler step (i = 0): boosting doubles the DG term where log r < 0, so it equals
    weight 2 w without boosting; no churn yet (the previous log ratio starts at +inf)."""
    w = jnp.asarray([0.5, -0.25])
    logit = lambda x_vp, tau, labels=None: x_vp @ w - 50.0  # always negative here
    corr = dg_correction_fn(logit, with_log_ratio=True)
    z = jax.random.normal(jax.random.PRNGKey(2), (8, 2))
    sig = edm_sigma_steps(1, sigma_max=2.0)
    boosted = edm_gpp_sample(WRONG, z, sig, corr, weight_1st=1.0, boosting=True,
                             rng=jax.random.PRNGKey(3))
    doubled = edm_gpp_sample(WRONG, z, sig, corr, weight_1st=2.0)
    np.testing.assert_allclose(boosted, doubled, rtol=1e-5, atol=1e-6)
    plain = edm_gpp_sample(WRONG, z, sig, corr, weight_1st=1.0)
    assert not np.allclose(boosted, plain)


def test_boosting_adds_churn_after_negative_log_ratio_and_is_seeded():
    w = jnp.asarray([0.5, -0.25])
    logit = lambda x_vp, tau, labels=None: x_vp @ w - 50.0
    corr = dg_correction_fn(logit, with_log_ratio=True)
    z = jax.random.normal(jax.random.PRNGKey(4), (8, 2))
    sig = edm_sigma_steps(8)
    run = lambda key: edm_gpp_sample(WRONG, z, sig, corr, weight_1st=1.0, boosting=True, rng=key)
    np.testing.assert_array_equal(run(jax.random.PRNGKey(5)), run(jax.random.PRNGKey(5)))
    assert not np.allclose(run(jax.random.PRNGKey(5)), run(jax.random.PRNGKey(6)))


def test_discriminator_runs_once_per_step_unless_second_order_is_weighted():
    """The traced step calls the discriminator once (Euler slope); the Heun correction calls
    it again only with weight_2nd != 0 (even when the log-ratio path is returned), and with
    weight_1st = 0 and no log ratios it is not called at all."""
    calls = []

    def counting_logit(x_vp, tau, labels=None):
        calls.append(1)
        return exact_logit_fn(x_vp, tau, labels)

    corr = dg_correction_fn(counting_logit, with_log_ratio=True)
    z = jnp.zeros((4, 2))
    sig = edm_sigma_steps(4)
    for kwargs, expected in ((dict(weight_1st=1.0, return_log_ratio=True), 1),
                             (dict(weight_1st=1.0, weight_2nd=1.0), 2),
                             (dict(weight_1st=0.0), 0)):
        calls.clear()
        jax.make_jaxpr(lambda z: edm_gpp_sample(WRONG, z, sig, corr, **kwargs))(z)
        assert len(calls) == expected, (kwargs, len(calls))
