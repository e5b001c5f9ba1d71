"""EDM-G++ (DG's sampler) against the generic Heun sampler and closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import C_G, C_R, M_G, M_R, exact_logit_fn, gaussian_denoiser
from dg_jax.guidance.discriminator import dg_correction_fn, discriminator_guidance
from dg_jax.samplers.edm import added_noise_std, edm_sigma_steps, heun_sample
from dg_jax.samplers.edm_gpp import edm_gpp_sample

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


def test_boosting_with_zero_dg_weight_is_finite_and_adds_no_noise_without_churn():
    """Boosting with weight_1st = 0 never evaluates the discriminator, so no sample is boosted:
    gamma is 0 everywhere and the result must be the deterministic sampler's, never NaN
    (a difference of squares fused by XLA used to give sqrt of a tiny negative number)."""
    z = jax.random.normal(jax.random.PRNGKey(7), (256, 2))
    sig = edm_sigma_steps(18)
    corr = dg_correction_fn(exact_logit_fn, with_log_ratio=True)
    boosted = jax.jit(lambda z, k: edm_gpp_sample(WRONG, z, sig, corr, weight_1st=0.0,
                                                  boosting=True, rng=k))(z, jax.random.PRNGKey(8))
    plain = jax.jit(lambda z: edm_gpp_sample(WRONG, z, sig, corr, weight_1st=0.0))(z)
    assert np.all(np.isfinite(boosted))
    np.testing.assert_allclose(boosted, plain, rtol=1e-6, atol=1e-6)


def test_added_noise_std_is_exactly_zero_without_churn_under_jit():
    t = jnp.asarray(np.geomspace(80.0, 0.002, 64), jnp.float32)
    f = jax.jit(lambda t, g: added_noise_std(t, t * (1 + g), g))
    zeros = f(t, jnp.zeros_like(t))
    assert np.all(np.asarray(zeros) == 0.0)
    g = jnp.full_like(t, 0.25)
    np.testing.assert_allclose(f(t, g), np.asarray(t) * np.sqrt(0.25 * 2.25), rtol=1e-5)
    np.testing.assert_array_equal(added_noise_std(np.ones(3), np.ones(3), np.zeros(3)), 0.0)


def test_given_per_step_noise_equals_rng_draws():
    """`noise` replaces the per-step draws: feeding the draws the rng would make reproduces the
    rng run exactly; other noise changes the result; a wrong shape names the expected one."""
    w = jnp.asarray([0.5, -0.25])
    logit = lambda x_vp, tau, labels=None: x_vp @ w - 50.0  # noqa: E731
    corr = dg_correction_fn(logit, with_log_ratio=True)
    z = jax.random.normal(jax.random.PRNGKey(9), (8, 2))
    sig = edm_sigma_steps(8)
    key = jax.random.PRNGKey(10)
    draws = jnp.stack([jax.random.normal(jax.random.fold_in(key, i), z.shape) for i in range(8)])
    kw = dict(weight_1st=1.0, boosting=True, S_churn=5.0)
    by_rng = edm_gpp_sample(WRONG, z, sig, corr, rng=key, **kw)
    np.testing.assert_allclose(edm_gpp_sample(WRONG, z, sig, corr, noise=draws, **kw), by_rng,
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(edm_gpp_sample(WRONG, z, sig, corr, noise=-draws, **kw), by_rng)
    heun_rng = heun_sample(WRONG, z, sig, rng=key, S_churn=5.0)
    np.testing.assert_allclose(heun_sample(WRONG, z, sig, noise=draws, S_churn=5.0), heun_rng,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(8, 8, 2\)"):
        edm_gpp_sample(WRONG, z, sig, corr, noise=draws[:4], **kw)


def test_heun_churn_outside_s_range_adds_exactly_nothing():
    """Steps with gamma = 0 (sigma outside [S_min, S_max]) add no noise: a run whose churn
    window holds no step equals the deterministic sampler bit for bit."""
    z = jax.random.normal(jax.random.PRNGKey(11), (64, 2))
    sig = edm_sigma_steps(10)
    run = jax.jit(lambda z, k: heun_sample(WRONG, z, sig, rng=k, S_churn=40.0, S_min=1e3,
                                           S_max=2e3))
    det = jax.jit(lambda z: heun_sample(WRONG, z, sig))
    np.testing.assert_allclose(run(z, jax.random.PRNGKey(0)), det(z), rtol=1e-6, atol=1e-6)
