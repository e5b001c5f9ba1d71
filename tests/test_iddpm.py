"""Improved-DDPM discrete diffusion, its losses and the DDPM/DDIM samplers against closed forms."""
import math
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from dg_jax.diffusion import iddpm as I
from dg_jax.diffusion import iddpm_losses as L
from dg_jax.guidance.cfg import classifier_guidance_cond_fn
from dg_jax.samplers.ddpm import ddim_sample, ddpm_sample

REPO = pathlib.Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("steps", [1000, 250])
def test_linear_schedule(steps):
    betas = I.get_named_beta_schedule("linear", steps)
    scale = 1000 / steps
    np.testing.assert_allclose(betas, np.linspace(1e-4 * scale, 0.02 * scale, steps), rtol=0)
    assert betas.dtype == np.float64


def test_cosine_schedule():
    steps = 1000
    betas = I.get_named_beta_schedule("cosine", steps)
    f = lambda t: np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    abar = np.cumprod(1 - betas)
    unclipped = betas < 0.999
    i = np.arange(steps)[unclipped]
    # without clipping the product telescopes to f((i + 1) / T) / f(0)
    np.testing.assert_allclose(abar[i][:-1], (f((i + 1) / steps) / f(0.0))[:-1], rtol=1e-9)
    assert betas[-1] == 0.999 and betas.max() == 0.999
    with pytest.raises(ValueError):
        I.get_named_beta_schedule("quadratic", 10)


def test_space_timesteps():
    assert I.space_timesteps(1000, "ddim10") == set(range(0, 1000, 100))
    assert I.space_timesteps(1000, "ddim25") == set(range(0, 1000, 40))
    steps = sorted(I.space_timesteps(300, [10, 15, 20]))
    assert len(steps) == 45 and steps[0] == 0 and steps[9] == 99 and steps[10] == 100
    assert steps[-1] == 299
    assert I.space_timesteps(1000, "250") == set(np.round(np.arange(250) * 999 / 249).astype(int))
    with pytest.raises(ValueError):
        I.space_timesteps(10, "20")


@pytest.mark.parametrize("respacing", ["ddim10", "250", "10,10,10"])
def test_respacing_keeps_alphas_cumprod(respacing):
    base = I.create_gaussian_diffusion(steps=1000, noise_schedule="cosine")
    resp = I.create_gaussian_diffusion(steps=1000, noise_schedule="cosine",
                                       timestep_respacing=respacing)
    kept = np.array(sorted(I.space_timesteps(1000, respacing)))
    np.testing.assert_array_equal(resp.timestep_map, kept)
    np.testing.assert_allclose(resp.alphas_cumprod, base.alphas_cumprod[kept], rtol=1e-9)
    assert resp.num_timesteps == len(kept) and resp.original_num_steps == 1000
    t = jnp.arange(resp.num_timesteps)
    np.testing.assert_array_equal(I.model_timesteps(resp, t), kept)


def test_flags_select_parameterisation():
    d = I.diffusion_from_flags({"learn_sigma": True, "noise_schedule": "cosine",
                                "diffusion_steps": 100, "rescale_learned_sigmas": True,
                                "rescale_timesteps": True})
    assert (d.model_var_type, d.model_mean_type, d.loss_type) == (
        "learned_range", "epsilon", "rescaled_mse")
    np.testing.assert_allclose(I.model_timesteps(d, jnp.array([0, 99])), [0.0, 990.0])
    d = I.diffusion_from_flags({"use_kl": True, "predict_xstart": True, "sigma_small": True})
    assert (d.model_var_type, d.model_mean_type, d.loss_type) == (
        "fixed_small", "start_x", "rescaled_kl")


# ----------------------------------------------------------------------------- q and p

def test_q_sample_marginal():
    d = I.create_gaussian_diffusion(steps=100, noise_schedule="linear")
    n = 200_000
    x0 = jnp.full((n, 1), 0.7)
    t = jnp.full((n,), 40)
    noise = jax.random.normal(jax.random.PRNGKey(0), (n, 1))
    xt = np.asarray(I.q_sample(d, x0, t, noise))
    abar = d.alphas_cumprod[40]
    np.testing.assert_allclose(xt.mean(), math.sqrt(abar) * 0.7, atol=1e-2)
    np.testing.assert_allclose(xt.var(), 1 - abar, rtol=1e-2)
    mean, var, logvar = I.q_mean_variance(d, x0[:2], t[:2])
    np.testing.assert_allclose(mean, math.sqrt(abar) * 0.7, rtol=1e-6)
    np.testing.assert_allclose(np.exp(logvar), var, rtol=1e-5)


def test_posterior_of_gaussian():
    """q(x_{t-1} | x_t, x_0) by Bayes: prior N(sqrt(abar_{t-1}) x_0, 1 - abar_{t-1}),
    likelihood x_t ~ N(sqrt(alpha_t) x_{t-1}, beta_t)."""
    d = I.create_gaussian_diffusion(steps=50, noise_schedule="cosine")
    t = jnp.array([1, 7, 30, 49])
    x0 = jnp.array([[0.3], [-0.5], [0.9], [0.1]], jnp.float32)
    xt = jnp.array([[0.1], [1.2], [-0.4], [2.0]], jnp.float32)
    mean, var, logvar = I.q_posterior_mean_variance(d, x0, xt, t)
    tn = np.asarray(t)
    beta = d.betas[tn]
    ab_prev = d.alphas_cumprod_prev[tn]
    prec = 1 / (1 - ab_prev) + (1 - beta) / beta
    want_var = 1 / prec
    want_mean = want_var * (np.sqrt(ab_prev) * np.asarray(x0)[:, 0] / (1 - ab_prev)
                            + np.sqrt(1 - beta) * np.asarray(xt)[:, 0] / beta)
    np.testing.assert_allclose(np.asarray(var)[:, 0], want_var, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mean)[:, 0], want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(logvar)[:, 0], np.log(want_var), rtol=1e-5)


def test_learned_range_and_eps_roundtrip():
    d = I.create_gaussian_diffusion(steps=100, noise_schedule="linear", learn_sigma=True)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 4, 2))
    eps = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    t = jnp.array([0, 5, 99])
    for v, table in ((-1.0, d.posterior_log_variance_clipped), (1.0, np.log(d.betas))):
        out = I.p_mean_variance_from_output(
            d, jnp.concatenate([eps, jnp.full_like(x, v)], -1), x, t, clip_denoised=False)
        np.testing.assert_allclose(out["log_variance"][:, 0, 0, 0], table[np.asarray(t)],
                                   rtol=1e-5)
        x0 = I.predict_xstart_from_eps(d, x, t, eps)
        np.testing.assert_allclose(out["pred_xstart"], x0, rtol=1e-6)
        np.testing.assert_allclose(I.predict_eps_from_xstart(d, x, t, x0), eps,
                                   rtol=1e-3, atol=1e-3)
    clipped = I.p_mean_variance_from_output(d, jnp.concatenate([eps * 50, eps], -1), x, t)
    assert float(jnp.abs(clipped["pred_xstart"]).max()) <= 1.0


def test_discretized_likelihood_and_cdf():
    z = np.linspace(-4, 4, 81)
    np.testing.assert_allclose(L.approx_standard_normal_cdf(jnp.asarray(z)),
                               stats.norm.cdf(z), atol=2e-4)
    x = jnp.array([-1.0, 0.0, 1.0, 0.5])
    ll = L.discretized_gaussian_log_likelihood(x, means=x, log_scales=jnp.full(4, -10.0))
    np.testing.assert_allclose(ll, 0.0, atol=1e-6)  # a tiny scale puts all mass in x's bin
    kl = L.normal_kl(0.3, math.log(0.5), -0.1, math.log(2.0))
    want = math.log(2.0 / 0.5) / 2 + (0.5 + 0.4 ** 2) / (2 * 2.0) - 0.5
    np.testing.assert_allclose(kl, want, rtol=1e-6)


def _gaussian_reverse(d, v):
    """The exact p(x_{t-1} | x_t) for 1-D data N(0, v): x_{t-1} = k_t x_t, variance s_t."""
    ab, ab_prev, alpha = d.alphas_cumprod, d.alphas_cumprod_prev, 1 - d.betas
    var_prev = ab_prev * v + 1 - ab_prev
    var_t = ab * v + 1 - ab
    k = np.sqrt(alpha) * var_prev / var_t
    s = var_prev - alpha * var_prev ** 2 / var_t
    return k, s


def test_vlb_of_exact_model_on_gaussian_data():
    """For the exact reverse model, E[KL_t] = I(x_0; x_{t-1}) - I(x_0; x_t) with
    I(x_0; x_t) = 0.5 log(1 + snr_t v) for data N(0, v)."""
    with jax.enable_x64(True):
        d = I.make_diffusion(I.get_named_beta_schedule("linear", 100),
                             model_mean_type="previous_x", model_var_type="learned",
                             loss_type="kl")
        v = 0.3
        k, s = _gaussian_reverse(d, v)

        def model_fn(x, t_model):
            kt = jnp.asarray(k)[t_model][:, None]
            st = jnp.asarray(s)[t_model][:, None]
            return jnp.concatenate([kt * x, jnp.broadcast_to(jnp.log(st), x.shape)], -1)

        n = 100_000
        ts = np.array([1, 10, 50, 99])
        x0 = math.sqrt(v) * jax.random.normal(jax.random.PRNGKey(3), (len(ts), n), jnp.float64)
        noise = jax.random.normal(jax.random.PRNGKey(4), (len(ts), n), jnp.float64)
        loss = L.training_losses(d, model_fn, x0, jnp.asarray(ts), noise)["loss"]
        snr = d.alphas_cumprod / (1 - d.alphas_cumprod)
        snr_prev = d.alphas_cumprod_prev[ts] / (1 - d.alphas_cumprod_prev[ts])
        want = 0.5 * (np.log1p(snr_prev * v) - np.log1p(snr[ts] * v)) / math.log(2)
        np.testing.assert_allclose(loss, want, rtol=2e-2)
        chex.assert_shape(loss, (len(ts),))


def test_hybrid_loss_stops_gradient_on_mean():
    d = I.create_gaussian_diffusion(steps=100, noise_schedule="cosine", learn_sigma=True,
                                    rescale_learned_sigmas=True)
    x0 = jax.random.uniform(jax.random.PRNGKey(5), (2, 4, 4, 3), minval=-1, maxval=1)
    noise = jax.random.normal(jax.random.PRNGKey(6), x0.shape)
    t = jnp.array([0, 60])

    def parts(scales):
        fn = lambda x, tm: jnp.concatenate([scales[0] * x, scales[1] * x], -1)  # noqa: E731
        terms = L.training_losses(d, fn, x0, t, noise)
        return jnp.stack([terms["vb"].sum(), terms["mse"].sum()])

    jac = np.asarray(jax.jit(jax.jacrev(parts))(jnp.array([0.5, 0.1])))
    # d vb / d mean-scale = 0 (frozen mean), d mse / d var-scale = 0, d vb / d var-scale != 0
    assert jac[0, 0] == 0.0 and jac[1, 1] == 0.0 and jac[0, 1] != 0.0 and jac[1, 0] != 0.0
    terms = L.training_losses(d, lambda x, tm: jnp.concatenate([x, 0 * x], -1), x0, t, noise)
    np.testing.assert_allclose(terms["loss"], terms["mse"] + terms["vb"], rtol=1e-6)


def test_loss_second_moment_sampler():
    state = L.init_loss_second_moment(3, history_per_term=2, uniform_prob=0.1)
    state = L.update_loss_second_moment(state, jnp.array([0, 0, 1, 1, 2]),
                                        jnp.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    np.testing.assert_array_equal(L.loss_second_moment_weights(state), 1.0)  # not warmed up
    state = L.update_loss_second_moment(state, jnp.array([2, 0]), jnp.array([6.0, 7.0]))
    np.testing.assert_array_equal(state.loss_history, [[2, 7], [3, 4], [5, 6]])
    rms = np.sqrt(np.mean(np.array([[2, 7], [3, 4], [5, 6]]) ** 2, axis=1))
    want = rms / rms.sum() * 0.9 + 0.1 / 3
    w = L.loss_second_moment_weights(state)
    np.testing.assert_allclose(w, want, rtol=1e-6)
    t, weights = L.sample_timesteps(jax.random.PRNGKey(0), w, 1000)
    np.testing.assert_allclose(weights, 1 / (3 * want[np.asarray(t)]), rtol=1e-5)


# ----------------------------------------------------------------------------- samplers

def _gaussian_eps_model(base, mean, cov):
    """The exact eps(x_t) = sqrt(1 - abar) (abar cov + (1 - abar) I)^-1 (x_t - sqrt(abar) m),
    indexed by the ORIGINAL timestep (the base process' tables)."""
    mean, cov = jnp.asarray(mean), jnp.asarray(cov)

    def model_fn(x, t_model, y):
        ab = jnp.asarray(base.alphas_cumprod)[t_model].astype(x.dtype)[:, None, None, None]
        cov_t = ab[..., None] * cov + (1 - ab[..., None]) * jnp.eye(cov.shape[0])
        r = x - jnp.sqrt(ab) * mean
        return jnp.sqrt(1 - ab) * jnp.linalg.solve(cov_t, r[..., None])[..., 0]

    return model_fn


def test_ddim_exact_eps_recovers_gaussian():
    """Deterministic DDIM is affine for Gaussian data: x_s - sqrt(abar_s) m = C_t (x_t -
    sqrt(abar_t) m), C_t = (sqrt(abar_s abar_t) cov + sqrt((1 - abar_s)(1 - abar_t)) I) cov_t^-1.
    Push 0 and the basis vectors through the sampler: the map must be exactly prod C_t, and carry
    N(0, I) to ~N(m, cov) (up to the discretisation error of 200 steps)."""
    with jax.enable_x64(True):
        base = I.create_gaussian_diffusion(steps=1000, noise_schedule="linear")
        d = I.create_gaussian_diffusion(steps=1000, noise_schedule="linear",
                                        timestep_respacing="ddim200")
        m = np.array([0.3, -0.2])
        cov = np.array([[0.5, 0.2], [0.2, 0.3]])
        pts = np.concatenate([np.zeros((1, 2)), np.eye(2)])[:, None, None, :]
        out = ddim_sample(d, _gaussian_eps_model(base, m, cov), jnp.asarray(pts),
                          clip_denoised=False)
        out = np.asarray(out)[:, 0, 0, :]
        b, a = out[0], (out[1:] - out[0]).T
        want_a = np.eye(2)
        for t in range(d.num_timesteps):
            ab, ab_s = d.alphas_cumprod[t], d.alphas_cumprod_prev[t]
            cov_t = ab * cov + (1 - ab) * np.eye(2)
            c = (np.sqrt(ab_s * ab) * cov + np.sqrt((1 - ab_s) * (1 - ab)) * np.eye(2))
            want_a = want_a @ (c @ np.linalg.inv(cov_t))
        np.testing.assert_allclose(a, want_a, rtol=1e-8)
        np.testing.assert_allclose(b, m - want_a @ (np.sqrt(d.alphas_cumprod[-1]) * m),
                                   rtol=1e-8)
        np.testing.assert_allclose(b, m, atol=2e-2)
        np.testing.assert_allclose(a @ a.T, cov, atol=2.5e-2)


def test_ddpm_exact_model_recovers_gaussian():
    """Ancestral sampling with the exact eps of N(m, v) data is an AR(1) chain:
    x_{t-1} = a_t x_t + c_t + sqrt(posterior var) z. Its sample moments match the chain's
    (and approximately N(m, v))."""
    base = I.create_gaussian_diffusion(steps=1000, noise_schedule="linear")
    d = I.create_gaussian_diffusion(steps=1000, noise_schedule="linear",
                                    timestep_respacing="100", sigma_small=True)
    m, v = 0.4, 0.2
    x_T = jax.random.normal(jax.random.PRNGKey(7), (20000, 1, 1, 1))
    out = ddpm_sample(d, _gaussian_eps_model(base, [m], [[v]]), x_T,
                      rng=jax.random.PRNGKey(8), clip_denoised=False)
    out = np.asarray(out).ravel()
    mean, var = 0.0, 1.0
    for t in range(d.num_timesteps - 1, -1, -1):
        ab = d.alphas_cumprod[t]
        v_t = ab * v + 1 - ab
        k = np.sqrt(1 / ab - 1) * np.sqrt(1 - ab) / v_t
        slope, icpt = np.sqrt(1 / ab) - k, k * np.sqrt(ab) * m
        a = d.posterior_mean_coef1[t] * slope + d.posterior_mean_coef2[t]
        mean = a * mean + d.posterior_mean_coef1[t] * icpt
        var = a * a * var + (d.posterior_variance[t] if t > 0 else 0.0)
    np.testing.assert_allclose(out.mean(), mean, atol=0.01)
    np.testing.assert_allclose(out.var(), var, rtol=0.03)
    np.testing.assert_allclose(out.mean(), m, atol=0.02)
    np.testing.assert_allclose(out.var(), v, rtol=0.2)


def test_classifier_gradient_linear_logits():
    """For logits = W^T vec(x) + c t, grad log softmax[y] = W[:, y] - W p."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, 2, 2, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)
    y = jnp.array([0, 3, 4])
    t = jnp.array([1, 2, 3])
    logits_fn = lambda x, t: x.reshape(x.shape[0], -1) @ w + 0.1 * t[:, None]  # noqa: E731
    grad = classifier_guidance_cond_fn(logits_fn, 2.5)(x, t, y)
    p = jax.nn.softmax(logits_fn(x, t), -1)
    want = 2.5 * (w.T[y] - p @ w.T).reshape(x.shape)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


def test_guidance_forms():
    """condition_mean shifts the mean by var * g; condition_score shifts eps by
    -sqrt(1 - abar) g, i.e. pred_xstart by sqrt(1 - abar) sqrt(1/abar - 1) g."""
    d = I.create_gaussian_diffusion(steps=100, noise_schedule="linear")
    x = jax.random.normal(jax.random.PRNGKey(9), (2, 2, 2, 3))
    t = jnp.array([10, 80])
    out = I.p_mean_variance_from_output(d, 0.3 * x, x, t, clip_denoised=False)
    g = jnp.ones_like(x)
    np.testing.assert_allclose(I.condition_mean(d, g, out)["mean"],
                               out["mean"] + out["variance"], rtol=1e-6)
    ab = d.alphas_cumprod[np.asarray(t)][:, None, None, None]
    shifted = I.condition_score(d, g, out, x, t)["pred_xstart"]
    np.testing.assert_allclose(shifted - out["pred_xstart"],
                               np.broadcast_to(np.sqrt(1 - ab) * np.sqrt(1 / ab - 1), x.shape),
                               rtol=1e-4)


def test_samplers_jit_matches_eager():
    d = I.create_gaussian_diffusion(steps=1000, noise_schedule="cosine", learn_sigma=True,
                                    timestep_respacing="ddim5")
    w = jax.random.normal(jax.random.PRNGKey(10), (12, 4)) * 0.1

    def model_fn(x, t_model, y):
        return jnp.concatenate([jnp.tanh(x) * (t_model[:, None, None, None] / 1000.0),
                                jnp.zeros_like(x)], -1)

    logits_fn = lambda x, t: x.reshape(x.shape[0], -1) @ w  # noqa: E731
    cond = classifier_guidance_cond_fn(logits_fn, 3.0)
    noise = jax.random.normal(jax.random.PRNGKey(11), (2, 2, 2, 3))
    y = jnp.array([1, 2])
    eager = ddim_sample(d, model_fn, noise, y=y, cond_fn=cond)
    jitted = jax.jit(lambda n: ddim_sample(d, model_fn, n, y=y, cond_fn=cond))(noise)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
    key = jax.random.PRNGKey(12)
    eager = ddpm_sample(d, model_fn, noise, y=y, cond_fn=cond, rng=key)
    jitted = jax.jit(lambda n, k: ddpm_sample(d, model_fn, n, y=y, cond_fn=cond, rng=k))(
        noise, key)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)
    _, traj = ddim_sample(d, model_fn, noise, y=y, eta=0.5, rng=key, return_trajectory=True)
    chex.assert_shape(traj, (5,) + noise.shape)


# ----------------------------------------------------------------------------- parity

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["iddpm_losses", "ddim_cg_sampler"])
def test_parity(kind, shared_fixtures):
    fixtures = shared_fixtures / "parity"
    if not (fixtures / "manifest.json").is_file():
        pytest.skip(f"no parity manifest in {fixtures}")
    proc = subprocess.run(
        [sys.executable, "-m", "launch.parity", "--fixtures", str(fixtures), "--only", kind],
        cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
