"""DiT-G++ (DG_imagenet `sample.py`): the latent DG cond_fn, DDPM sampling with explicit per-step
noise, and parity with the official code on ../shared/fixtures/parity_dit (skipped when absent)."""
import pathlib
import re
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.diffusion.iddpm import create_dit_diffusion, create_gaussian_diffusion
from dg_jax.guidance.discriminator import latent_dg_cond_fn, log_ratio_from_logit
from dg_jax.guidance.dit_cfg import forward_with_dg
from dg_jax.samplers.ddpm import ddpm_sample
from dg_jax.samplers.dit_gpp import dit_gpp_sample

REPO = pathlib.Path(__file__).resolve().parents[1]
SHAPE = (3, 4, 4, 2)  # B, H, W, C (NHWC latents)
W = jax.random.normal(jax.random.PRNGKey(0), SHAPE[1:])


def quadratic_logit(x, tau, y=None):
    """A closed-form logit: (1 + tau) sum(W x^2) + 0.1 y; grad_x = 2 (1 + tau) W x."""
    logit = (1.0 + tau) * jnp.sum(W * x ** 2, axis=(1, 2, 3))
    return logit if y is None else logit + 0.1 * y


def _x(seed=1, scale=0.3):
    return scale * jax.random.normal(jax.random.PRNGKey(seed), SHAPE)


def _t(value, b=SHAPE[0]):
    return jnp.full((b,), value, jnp.int32)


# ----------------------------------------------------------------------------- the DG cond_fn

def test_cond_fn_is_zero_at_and_below_time_min_and_nonzero_above():
    cond_fn = jax.jit(latent_dg_cond_fn(quadratic_logit, 10.0, 300))
    x, y = _x(), jnp.array([1, 2, 3])
    for t in (0, 100, 299, 300):
        chex.assert_trees_all_equal(cond_fn(x, _t(t), y), jnp.zeros_like(x))
    for t in (301, 666, 999):
        assert float(jnp.abs(cond_fn(x, _t(t), y)).max()) > 0


def test_cond_fn_is_dg_scale_times_the_log_ratio_gradient():
    scale, x, y = 7.5, _x(), jnp.array([0, 4, 9])
    cond_fn = latent_dg_cond_fn(quadratic_logit, scale, 100)
    for t in (101, 500, 999):
        tau = np.float32(t) / np.float32(999)
        expected = scale * 2.0 * (1.0 + tau) * W * x  # d is never clipped here: |logit| < 11
        np.testing.assert_allclose(cond_fn(x, _t(t), y), expected, rtol=1e-4, atol=1e-6)
        # and the same as autodiff of DG's clipped log(d / (1 - d))
        ref = jax.grad(lambda z, tau=tau: jnp.sum(log_ratio_from_logit(
            quadratic_logit(z, jnp.full((3,), tau), y), (1e-5, 1 - 1e-5))))(x)
        np.testing.assert_allclose(cond_fn(x, _t(t), y), scale * ref, rtol=1e-5, atol=1e-6)


def test_cond_fn_gradient_is_zero_where_d_is_clipped():
    x = _x().at[1].multiply(30.0)  # row 1: |logit| ~ 100, d clipped to 1e-5 or 1 - 1e-5
    cond_fn = latent_dg_cond_fn(quadratic_logit, 1.0, 0)
    g = cond_fn(x, _t(500), None)
    assert abs(float(quadratic_logit(x[1:2], jnp.full((1,), 0.5))[0])) > 20
    chex.assert_trees_all_equal(g[1], jnp.zeros_like(g[1]))
    assert float(jnp.abs(g[0]).min()) > 0 and float(jnp.abs(g[2]).max()) > 0
    # a narrower clip (d in [0.2, 0.8], |logit| <= log 4) zeroes more rows
    narrow = latent_dg_cond_fn(lambda z, tau, y=None: jnp.array([0.0, 5.0, -5.0]) +
                               jnp.sum(z, axis=(1, 2, 3)), 1.0, 0, d_clip=(0.2, 0.8))
    g = narrow(jnp.zeros(SHAPE), _t(500), None)
    assert float(jnp.abs(g[0]).min()) > 0
    chex.assert_trees_all_equal(g[1:], jnp.zeros_like(g[1:]))
    with pytest.raises(ValueError, match="0 < lo < hi < 1"):
        latent_dg_cond_fn(quadratic_logit, 1.0, 0, d_clip=(0.5, 0.4))


def test_cond_fn_on_the_doubled_batch_uses_the_first_half_and_returns_it_twice():
    x, y = _x(), jnp.array([1, 2, 3])
    single = latent_dg_cond_fn(quadratic_logit, 3.0, 300)
    doubled = latent_dg_cond_fn(quadratic_logit, 3.0, 300, cond_rows=3)
    x2 = jnp.concatenate([x, _x(seed=5)])  # the null half differs: it must not matter
    y2 = jnp.concatenate([y, jnp.full((3,), 1000)])
    g = doubled(x2, jnp.concatenate([_t(400), _t(400)]), y2)
    g1 = single(x, _t(400), y)
    np.testing.assert_array_equal(g, jnp.concatenate([g1, g1]))
    with pytest.raises(ValueError, match="doubled batch"):
        doubled(x, _t(400), y)


# ----------------------------------------------------------------------------- DDPM step noise

def _toy_model_fn(x, t, y=None):
    """A learned-range model output: eps = 0.9 x, variance values v = tanh(x) in [-1, 1]."""
    frac = (t.astype(jnp.float32) / 1000.0).reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.concatenate([0.9 * x * (1 - 0.1 * frac), jnp.tanh(x)], axis=-1)


def _rng_draws(diffusion, key, shape):
    """The draws ddpm_sample makes from `key`: normal(split(key, T)[k]) at scan step k."""
    keys = jax.random.split(key, diffusion.num_timesteps)
    return jnp.stack([jax.random.normal(k, shape, jnp.float32) for k in keys])


def test_ddpm_step_noise_equals_rng_draws_eager_and_jit():
    d = create_gaussian_diffusion(steps=1000, learn_sigma=True, timestep_respacing="7")
    x_T, key = jax.random.normal(jax.random.PRNGKey(2), SHAPE), jax.random.PRNGKey(3)
    cond_fn = latent_dg_cond_fn(quadratic_logit, 2.0, 300)
    draws = _rng_draws(d, key, SHAPE)
    kwargs = dict(clip_denoised=False, cond_fn=cond_fn)
    with_rng = ddpm_sample(d, _toy_model_fn, x_T, rng=key, **kwargs)
    given = ddpm_sample(d, _toy_model_fn, x_T, step_noise=draws, **kwargs)
    jitted = jax.jit(lambda z, n: ddpm_sample(d, _toy_model_fn, z, step_noise=n, **kwargs))(
        x_T, draws)
    np.testing.assert_allclose(given, with_rng, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jitted, given, rtol=1e-5, atol=1e-5)
    # the last step's draw is masked out; every other one is used
    last = draws.at[-1].set(100.0)
    np.testing.assert_array_equal(ddpm_sample(d, _toy_model_fn, x_T, step_noise=last, **kwargs),
                                  given)
    first = draws.at[0].add(1.0)
    assert float(jnp.abs(ddpm_sample(d, _toy_model_fn, x_T, step_noise=first, **kwargs)
                         - given).max()) > 1e-3
    with pytest.raises(ValueError, match="num_steps"):
        ddpm_sample(d, _toy_model_fn, x_T, step_noise=draws[:-1], **kwargs)


def test_ddpm_with_step_noise_lowers_to_the_same_program_for_8_and_64_steps():
    cond_fn = latent_dg_cond_fn(quadratic_logit, 2.0, 300)
    texts = []
    for n in (8, 64):
        d = create_gaussian_diffusion(steps=1000, learn_sigma=True, timestep_respacing=str(n))
        fn = jax.jit(lambda z, s, d=d: ddpm_sample(d, _toy_model_fn, z, step_noise=s,
                                                   cond_fn=cond_fn, clip_denoised=False))
        text = fn.lower(jnp.zeros(SHAPE), jnp.zeros((n,) + SHAPE)).as_text()
        text = re.sub(r"tensor<\d+x", "tensor<Nx", text)
        texts.append(re.sub(r"\[\d+:\d+\]|dense<[^>]*>|array<i64: [^>]*>", "...", text))
    assert texts[0] == texts[1]


# ----------------------------------------------------------------------------- DiT-G++ sampler

NUM_CLASSES = 4
EMB = jax.random.normal(jax.random.PRNGKey(7), (NUM_CLASSES + 1, SHAPE[-1]))


def toy_dit(x, t, y):
    """A label- and time-dependent [eps, variance values] output standing in for a DiT."""
    e = EMB[y][:, None, None, :]
    frac = (t.astype(jnp.float32) / 1000.0)[:, None, None, None]
    return jnp.concatenate([0.9 * x + 0.3 * e * frac, jnp.tanh(x + e)], axis=-1)


def test_dit_diffusion_has_dits_defaults_and_respacing():
    d = create_dit_diffusion("10")
    assert d.learns_variance and not d.rescale_timesteps and d.model_mean_type == "epsilon"
    np.testing.assert_array_equal(d.timestep_map, np.arange(10) * 111)
    np.testing.assert_array_equal(create_dit_diffusion(10).betas, d.betas)
    assert create_dit_diffusion("").num_timesteps == 1000


@pytest.mark.slow
def test_dit_gpp_on_conditional_rows_equals_the_official_doubled_loop():
    """sample.py's loop on 2B rows (cat(z, z), cat(y, null), forward_with_dg on the doubled
    batch, the cond_fn returning cat(g, g), all 2B rows of noise) keeps rows [:B]; they equal
    dit_gpp_sample on B rows with the first half of the noise, and the null rows' noise does not
    reach them."""
    d = create_dit_diffusion("10")
    b = SHAPE[0]
    z = jax.random.normal(jax.random.PRNGKey(8), SHAPE)
    y = jnp.array([0, 3, 1])
    noise = jax.random.normal(jax.random.PRNGKey(9), (10, 2 * b) + SHAPE[1:])
    settings = dict(LT_cfg=1.5, ST_cfg=4.0, branch_time=500)

    def official(step_noise):
        def model_fn(x, t, lab):
            return forward_with_dg(toy_dit, x, t, lab, settings["LT_cfg"], settings["ST_cfg"],
                                   settings["branch_time"], doubled=True)

        cond_fn = latent_dg_cond_fn(quadratic_logit, 10.0, 300, cond_rows=b)
        out = ddpm_sample(d, model_fn, jnp.concatenate([z, z]),
                          y=jnp.concatenate([y, jnp.full((b,), NUM_CLASSES)]),
                          step_noise=step_noise, cond_fn=cond_fn, clip_denoised=False)
        return out[:b]

    ours = jax.jit(lambda n: dit_gpp_sample(
        d, toy_dit, z, y, null_label=NUM_CLASSES, step_noise=n, clip_denoised=False,
        cond_fn=latent_dg_cond_fn(quadratic_logit, 10.0, 300), **settings))(noise[:, :b])
    ref = jax.jit(official)(noise)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(jax.jit(official)(noise.at[:, b:].set(3.0)), ref)
    # guidance does something: plain sampling (s = 1, no DG) differs
    plain = dit_gpp_sample(d, toy_dit, z, y, null_label=NUM_CLASSES, step_noise=noise[:, :b])
    assert float(jnp.abs(plain - ours).max()) > 1e-2


# ----------------------------------------------------------------------------- parity

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dit_dg_cond_fn", "dit_dg_sampler"])
def test_parity_against_official_code(shared_fixtures, kind):
    fixtures = shared_fixtures / "parity_dit"
    if not (fixtures / "manifest.json").is_file():
        pytest.skip(f"no parity manifest at {fixtures}")
    proc = subprocess.run([sys.executable, "-m", "launch.parity", "--fixtures", str(fixtures),
                           "--only", kind], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout
