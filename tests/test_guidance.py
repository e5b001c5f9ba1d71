"""DG's correction against closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import C_G, C_R, M_G, M_R, VPP, exact_logit_fn, gaussian_denoiser
from dg_jax.broadcast import expand_like, per_example
from dg_jax.guidance.cfg import classifier_guidance_cond_fn, window_weight
from dg_jax.guidance.discriminator import (
    dg_correction_fn,
    discriminator_guidance,
    guide_denoiser,
    guide_score,
    log_ratio_from_logit,
)
from dg_jax.samplers.edm import edm_sigma_steps, heun_sample


def test_logistic_discriminator_gradient_is_analytic():
    w = jnp.asarray([0.7, -1.3])
    logit_fn = lambda x_vp, tau, labels=None: x_vp @ w + 0.5 * tau
    corr = dg_correction_fn(logit_fn)
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
    sigma = jnp.linspace(0.05, 10.0, 16)
    expected = VPP.mean(VPP.t_from_sigma(sigma))[:, None] * w[None]  # chain rule through x_vp
    np.testing.assert_allclose(corr(x, sigma), expected, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(corr)(x, sigma), expected, rtol=1e-5)
    # DG's clipped-sigmoid form agrees for moderate logits ...
    np.testing.assert_allclose(dg_correction_fn(logit_fn, clip_probability=True)(x, sigma),
                               expected, rtol=1e-3)
    # ... and is flat where d is clipped (|logit| > log(1e5))
    big = lambda x_vp, tau, labels=None: 100.0 * (x_vp @ w) + 20.0
    g = dg_correction_fn(big, clip_probability=True)(jnp.ones((2, 2)) * 5, jnp.ones(2))
    np.testing.assert_allclose(g, 0.0)


def test_log_ratio_from_logit():
    logits = jnp.asarray([-3.0, 0.0, 4.0])
    np.testing.assert_allclose(log_ratio_from_logit(logits), logits)
    np.testing.assert_allclose(log_ratio_from_logit(logits, True), logits, rtol=1e-4)


@pytest.mark.slow
def test_exact_discriminator_turns_wrong_score_into_true_score():
    corr = dg_correction_fn(exact_logit_fn)
    wrong, true = gaussian_denoiser(M_G, C_G), gaussian_denoiser(M_R, C_R)
    guided = guide_denoiser(wrong, corr, 1.0)
    x = 2.0 * jax.random.normal(jax.random.PRNGKey(1), (32, 2))
    for s in (0.01, 0.3, 1.0, 5.0, 40.0):
        sigma = jnp.full((32,), s)
        np.testing.assert_allclose(guided(x, sigma), true(x, sigma), rtol=2e-3, atol=2e-3 * s**2)
    # and the same in score form
    score = lambda den: (lambda x, s, labels=None: (den(x, s) - x) / s[:, None] ** 2)
    sigma = jnp.full((32,), 0.7)
    np.testing.assert_allclose(guide_score(score(wrong), corr)(x, sigma), score(true)(x, sigma),
                               rtol=2e-3, atol=1e-3)
    # sampling with the guided denoiser reproduces the true Gaussian
    z = jax.random.normal(jax.random.PRNGKey(2), (20000, 2))
    samples = np.asarray(jax.jit(lambda z: heun_sample(
        wrong, z, edm_sigma_steps(40), guidance=discriminator_guidance(exact_logit_fn)))(z))
    np.testing.assert_allclose(samples.mean(0), M_R, atol=0.03)
    np.testing.assert_allclose(np.cov(samples.T), C_R, atol=0.03)


def test_time_window_masks_and_skips():
    calls = []

    def logit_fn(x_vp, tau, labels=None):
        calls.append(1)  # traced once per evaluation branch
        return jnp.sum(x_vp, -1)

    corr = dg_correction_fn(logit_fn, time_min=0.2, time_max=0.6)
    sigma = jnp.asarray([0.1, 1.0, 50.0])  # tau ~ 0.08, 0.39, 0.99
    g = np.asarray(corr(jnp.ones((3, 2)), sigma))
    assert np.all(g[0] == 0) and np.all(g[2] == 0) and np.all(g[1] != 0)
    g_out = corr(jnp.ones((2, 2)), jnp.asarray([50.0, 60.0]))
    np.testing.assert_allclose(g_out, 0.0)


@pytest.mark.parametrize("bad", [(-0.1, 1.0), (0.0, 1.5), (0.8, 0.2)])
def test_time_window_validation_names_field(bad):
    with pytest.raises(ValueError, match=r"dg\.time_m(in|ax)"):
        dg_correction_fn(lambda x, t, y=None: x.sum(-1), time_min=bad[0], time_max=bad[1])


# ------------------------------------------------------------------ per-example broadcasting

@pytest.mark.parametrize("value", [0.5, np.float64(0.5), jnp.asarray(0.5), jnp.asarray([0.5]),
                                   jnp.full((3,), 0.5)], ids=["float", "np", "0d", "1", "B"])
def test_per_example_gives_one_value_per_example(value):
    out = per_example(value, 3, jnp.float32)
    assert out.shape == (3,) and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, np.full(3, 0.5, np.float32))
    assert per_example(jnp.arange(3, dtype=jnp.int32), 3).dtype == jnp.int32  # dtype kept
    with pytest.raises(ValueError):
        per_example(jnp.ones(2), 3)


def test_expand_like_shapes_against_x():
    x = jnp.zeros((3, 4, 4, 2))
    assert expand_like(jnp.ones(3), x).shape == (3, 1, 1, 1)
    assert expand_like(2.0, x, jnp.bfloat16).shape == ()
    assert expand_like(2.0, x, jnp.bfloat16).dtype == jnp.bfloat16
    np.testing.assert_array_equal(expand_like(jnp.arange(3.0), x) * jnp.ones_like(x),
                                  np.arange(3.0)[:, None, None, None] * np.ones(x.shape))


# ---------------------------------------------------------------- classifier guidance cond_fn

def _reference_classifier_grad(logits_fn, scale, x, t, y):
    """guided-diffusion's cond_fn: scale * grad_x sum_i log_softmax(logits(x, t))_i[y_i]."""
    def total(x_in):
        log_probs = jax.nn.log_softmax(logits_fn(x_in, t), axis=-1)
        return jnp.sum(jnp.take_along_axis(log_probs, y[:, None], axis=-1))
    return jax.grad(total)(x) * scale


def test_classifier_guidance_cond_fn_is_guided_diffusions_exactly():
    w = jax.random.normal(jax.random.PRNGKey(3), (8, 5))
    logits_fn = lambda x, t: x.reshape(x.shape[0], -1) @ w + 0.01 * t[:, None]  # noqa: E731
    x = jax.random.normal(jax.random.PRNGKey(4), (3, 2, 2, 2))
    t, y = jnp.array([10, 400, 900]), jnp.array([0, 4, 2])
    for scale in (1.0, 2.5, 7.3):
        got = classifier_guidance_cond_fn(logits_fn, scale)(x, t, y)
        np.testing.assert_array_equal(got, _reference_classifier_grad(logits_fn, scale, x, t, y))
        jitted = jax.jit(classifier_guidance_cond_fn(logits_fn, scale))(x, t, y)
        np.testing.assert_allclose(jitted, got, rtol=1e-6, atol=1e-7)
    windowed = classifier_guidance_cond_fn(logits_fn, window_weight(2.5, 0, 500))(x, t, y)
    full = _reference_classifier_grad(logits_fn, 2.5, x, t, y)
    np.testing.assert_array_equal(windowed[:2], full[:2])
    np.testing.assert_array_equal(windowed[2], 0.0)
