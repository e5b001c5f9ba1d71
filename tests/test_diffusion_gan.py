"""Diffusion-GAN: the adaptive T rule, the schedule, t_epl, priority weights, differentiability,
resume and sharding of the trainer, and the smoke pipelines."""
import json
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dg_jax.gan import diffusion_aug as da


def _cfg(**kw):
    return da.DiffusionConfig(**kw)


def test_adaptive_update_matches_hand_computation():
    cfg = _cfg(t_min=10, t_max=1000, d_target=0.6, ada_interval=4, ada_kimg=100.0)
    st = da.init_state(jax.random.PRNGKey(0), cfg, p=0.3)
    assert int(st.T) == 10 + round(0.3 * 990)
    # 8 real logits, 7 positive and 1 negative: r_d = 6/8 = 0.75 > 0.6 -> p up by 64*4/1e5
    st = da.record_signs(st, jnp.array([1., 2, 3, 4, 5, 6, 7, -1]))
    new = da.adjust(st, jax.random.PRNGKey(1), cfg, batch_size=64)
    p = min(max(0.3 + 1 * 64 * 4 / (100 * 1000), 0.0), 1.0)
    assert float(new.last_rd) == pytest.approx(0.75)
    assert float(new.p) == pytest.approx(p, abs=1e-7)
    assert int(new.T) == int(np.clip(10 + round(p * 990), 10, 1000)) == 310
    assert float(new.sign_sum) == 0 and float(new.sign_count) == 0
    # r_d below the target: p goes down; clipping at 0 and at 1
    low = da.record_signs(st, -jnp.ones(4))
    assert float(da.adjust(low, jax.random.PRNGKey(1), cfg, 64).p) == pytest.approx(
        0.3 - 64 * 4 / 1e5, abs=1e-7)
    at0 = da.record_signs(da.init_state(jax.random.PRNGKey(0), cfg, 0.0), -jnp.ones(4))
    assert float(da.adjust(at0, jax.random.PRNGKey(1), cfg, 64).p) == 0.0
    at1 = da.record_signs(da.init_state(jax.random.PRNGKey(0), cfg, 1.0), jnp.ones(4))
    out = da.adjust(at1, jax.random.PRNGKey(1), cfg, 64)
    assert float(out.p) == 1.0 and int(out.T) == 1000


def test_adjust_only_every_ada_interval():
    cfg = _cfg(ada_interval=4, ada_kimg=1.0)
    st = da.record_signs(da.init_state(jax.random.PRNGKey(0), cfg), jnp.ones(8))
    for idx in (1, 2, 3, 5):
        same = da.maybe_adjust(st, idx, jax.random.PRNGKey(2), cfg, 64)
        assert float(same.p) == 0.0 and float(same.sign_count) == 8
        np.testing.assert_array_equal(same.t_epl, st.t_epl)
    moved = da.maybe_adjust(st, 8, jax.random.PRNGKey(2), cfg, 64)
    assert float(moved.p) == pytest.approx(64 * 4 / 1000)
    off = da.maybe_adjust(st, 8, jax.random.PRNGKey(2), _cfg(enabled=False), 64)
    assert float(off.p) == 0.0 and float(off.last_rd) == 1.0


@pytest.mark.parametrize("T", [1, 2, 10, 37, 1000])
def test_schedule_respread_over_T(T):
    cfg = _cfg(t_min=1, t_max=1000)
    a, b = da.schedule(jnp.int32(T), cfg)
    ra, rb = da.schedule_numpy(T, cfg)
    # within 1 float32 ulp of the official tables (the double-float cumprod; a plain float32
    # cumprod is off by ~1e-6 at T = 500, which the parity fixtures do not accept)
    np.testing.assert_allclose(np.asarray(a)[:T + 1], ra, rtol=0, atol=1.2e-7)
    np.testing.assert_allclose(np.asarray(b)[:T + 1], rb, rtol=0, atol=1.2e-7)
    abar = np.asarray(a, np.float64) ** 2
    if T > 1:  # the last step of the current T uses beta_end, the first beta_start
        assert abar[T] / abar[T - 1] == pytest.approx(1 - cfg.beta_end, rel=1e-5)
    assert abar[1] == pytest.approx(1 - cfg.beta_start, rel=1e-6)
    assert abar[0] == 1.0


def test_accurate_cumprod_beats_float32():
    a = (1.0 - np.linspace(1e-4, 2e-2, 1000)).astype(np.float32)
    exact = np.cumprod(a.astype(np.float64))
    got = np.asarray(jax.jit(da.accurate_cumprod)(jnp.asarray(a)), np.float64)
    np.testing.assert_allclose(got, exact, rtol=1.2e-7, atol=0)
    plain = np.asarray(jnp.cumprod(jnp.asarray(a)), np.float64)
    assert np.abs(plain - exact).max() > np.abs(got - exact).max()


def test_t_epl_composition_and_priority_weights():
    T = 6
    for ts, pw, probs in [("uniform", "t_minus_1", [1 / 6] * 6),
                          ("priority", "t_minus_1", [0, 1, 2, 3, 4, 5]),
                          ("priority", "t", [1, 2, 3, 4, 5, 6])]:
        cfg = _cfg(t_min=1, t_max=20, ts_dist=ts, priority_weights=pw)
        probs = np.asarray(probs, np.float64) / np.sum(probs)
        got = np.asarray(da.priority_probs(jnp.int32(T), cfg))
        np.testing.assert_allclose(got[:T], probs, atol=1e-7)
        assert np.all(got[T:] == 0)
        epl = np.asarray(jax.vmap(lambda k: da.sample_t_epl(k, jnp.int32(T), cfg))(
            jax.random.split(jax.random.PRNGKey(0), 300)))
        assert epl.shape == (300, 64)
        assert np.all(epl[:, 32:] == 0)
        first = epl[:, :32].ravel()
        assert first.min() >= 1 and first.max() <= T
        freq = np.bincount(first, minlength=T + 1)[1:] / first.size
        np.testing.assert_allclose(freq, probs, atol=0.02)
    # T = 1 with the official t - 1 weights (0 / 0 there): t = 1
    cfg = _cfg(t_min=1, t_max=5)
    assert np.all(np.asarray(da.sample_t_epl(jax.random.PRNGKey(0), jnp.int32(1), cfg))[:32] == 1)


def test_augmentation_is_differentiable():
    cfg = _cfg(t_min=10, t_max=100, noise_std=0.05)
    st = da.init_state(jax.random.PRNGKey(0), cfg, p=0.5)
    x = jax.random.normal(jax.random.PRNGKey(1), (16, 4, 4, 3))
    t = st.t_epl[jnp.arange(16) * 4]
    g = jax.grad(lambda x: jnp.sum(da.diffuse(x, t, st.T, jax.random.PRNGKey(2), cfg)))(x)
    a, _ = da.schedule(st.T, cfg)
    np.testing.assert_allclose(np.asarray(g), np.broadcast_to(
        np.asarray(a[t])[:, None, None, None], x.shape), rtol=1e-6)
    # y = sqrt(abar) x + sqrt(1 - abar) sigma eps, with t = 0 the identity
    y0 = da.diffuse(x, jnp.zeros(16, jnp.int32), st.T, jax.random.PRNGKey(2), cfg)
    np.testing.assert_allclose(np.asarray(y0), np.asarray(x), atol=1e-7)


def _tiny_config(num_steps=12):
    from configs.toy25_diffusion_gan import get_config

    c = get_config("smoke")
    c.unlock()
    c.train.num_steps = num_steps
    c.train.checkpoint_every = 6
    c.train.log_every = 6
    c.train.batch_size = 16
    c.train.r1_gamma = 0.1
    c.train.r1_interval = 4
    c.diffusion.ada_kimg = 0.2    # large p moves (0.32 per adjustment): T changes within steps
    c.diffusion.d_target = -0.5
    return c


def _train(c, workdir, mesh, num_steps):
    from dg_jax.experiments.diffusion_gan.train import train_gan
    from dg_jax.experiments.kit.setup import Run
    from dg_jax.rng import Streams

    c = ml_collections.ConfigDict(c.to_dict())
    c.train.num_steps = num_steps
    means = np.array([[0.5, 0.5], [-0.5, -0.5]], np.float32)

    def batch_fn(step):
        rng = np.random.default_rng([0, step])
        return {"real": means[rng.integers(0, 2, c.train.batch_size)]
                + 0.05 * rng.standard_normal((c.train.batch_size, 2)).astype(np.float32)}

    run = Run(c, pathlib.Path(workdir), None, mesh, Streams(c.seed))
    return train_gan(run, "diffusion_gan", (2,), batch_fn, True)[0]


def _assert_states_equal(a, b, exact=True):
    for x, y in zip(jax.tree_util.tree_leaves(jax.device_get(a)),
                    jax.tree_util.tree_leaves(jax.device_get(b))):
        if exact:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        else:
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5, atol=2e-6)


@pytest.mark.slow
def test_resume_restores_p_T_t_epl_exactly(tmp_path):
    from dg_jax.parallel import make_mesh

    mesh = make_mesh(jax.devices()[:1])
    c = _tiny_config()
    full = _train(c, tmp_path / "full", mesh, 12)
    _train(c, tmp_path / "split", mesh, 6)            # "killed" after the step-6 checkpoint
    resumed = _train(c, tmp_path / "split", mesh, 12)  # a new process would rebuild from disk
    assert int(resumed.step) == 12
    assert float(full.diffusion.p) > 0 and int(full.diffusion.T) > c.diffusion.t_min
    _assert_states_equal(full, resumed)


@pytest.mark.slow
def test_sharded_equals_single_device(tmp_path):
    from dg_jax.parallel import make_mesh

    assert len(jax.devices()) == 8
    c = _tiny_config(8)
    one = _train(c, tmp_path / "one", make_mesh(jax.devices()[:1]), 8)
    eight = _train(c, tmp_path / "eight", make_mesh(), 8)
    np.testing.assert_array_equal(np.asarray(one.diffusion.T), np.asarray(eight.diffusion.T))
    np.testing.assert_array_equal(np.asarray(one.diffusion.t_epl),
                                  np.asarray(eight.diffusion.t_epl))
    _assert_states_equal(one, eight, exact=False)


@pytest.mark.parametrize("config_file,keys", [
    ("configs/toy25_diffusion_gan.py", ("vanilla", "diffusion_gan")),
    ("configs/digits_diffusion_gan.py", ("fd_vanilla", "fd_diffusion_gan")),
    ("configs/cifar10_diffusion_stylegan2.py", ("diffusion_gan",)),
])
@pytest.mark.slow
def test_smoke_pipelines(tmp_path, config_file, keys):
    import importlib.util

    from dg_jax.experiments.registry import get_pipeline

    root = pathlib.Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("cfg", root / config_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    config = mod.get_config("smoke")
    results = get_pipeline(config.pipeline)(config, str(tmp_path))
    saved = json.loads((tmp_path / "results.json").read_text())
    for k in keys:
        assert k in saved and k in results
    if "toy25" in config_file:
        assert {"modes_covered", "high_quality_fraction", "final_T"} <= set(saved["vanilla"])
        assert (tmp_path / "toy25.png").exists()


# ------------------------------------------------------------------ parity with the official code
def test_parity_dgan_fixtures(shared_fixtures):
    from dg_jax.parity.runner import run_manifest

    results = run_manifest(shared_fixtures / "parity_dgan", echo=lambda _: None)
    assert results and all(r.passed for r in results), [r.line() for r in results if not r.passed]


def _official_adaptive(r_d, t_min, t_max, target, batch_size, ada_interval, ada_kimg):
    """The official update in Python floats, written out independently of dg_jax."""
    p, ps, Ts = 0.0, [], []
    for c in r_d:
        adjust = np.sign(c - target) * (batch_size * ada_interval) / (ada_kimg * 1000)
        p = float(np.clip(p + adjust, 0.0, 1.0))
        ps.append(p)
        Ts.append(int(np.clip(t_min + round(p * (t_max - t_min)), t_min, t_max)))
    return np.asarray(ps), np.asarray(Ts)


def test_parity_dgan_runner_on_other_settings(tmp_path):
    """Cases of the fixture schema with settings the fixtures do not hold, the expected values
    computed by the official rules written out here: the runner needs no change for them."""
    from dg_jax.parity.runner import run_manifest

    rng = np.random.default_rng(7)
    cases = []
    settings = dict(t_min=10, t_max=1000, target=0.6, batch_size=32, ada_interval=4, ada_kimg=3)
    r_d = np.concatenate([rng.uniform(0.6, 1.0, 300), rng.uniform(-0.2, 0.6, 200),
                          rng.uniform(0.0, 1.0, 100)])
    p, T = _official_adaptive(r_d, **settings)
    assert T.max() == 1000 and T[-200:].min() < 1000  # T sweeps up, saturates, comes back
    np.savez(tmp_path / "ada.npz", r_d=r_d, p=p, T=T)
    cases.append(dict(name="ada", kind="diffusion_gan_adaptive", io="ada.npz", config=settings,
                      rtol=0.0, atol=1e-9))
    for T_steps, beta_end, noise_std in [(1, 0.02, 0.05), (10, 0.03, 0.1), (1000, 0.02, 0.05)]:
        diff = dict(beta_schedule="linear", beta_start=1e-4, beta_end=beta_end, T=T_steps,
                    noise_std=noise_std)
        x0 = rng.uniform(-1, 1, (5, 2, 4, 4)).astype(np.float32)
        eps = rng.standard_normal(x0.shape).astype(np.float32)
        t = rng.integers(0, T_steps + 1, 5)
        a, b = da.schedule_numpy(T_steps, da.DiffusionConfig(beta_end=beta_end, t_min=1,
                                                             t_max=T_steps))
        x_t = (a[t][:, None, None, None] * x0
               + b[t][:, None, None, None] * (np.float32(noise_std) * eps)).astype(np.float32)
        name = f"q{T_steps}"
        np.savez(tmp_path / f"{name}.npz", x0=x0, t=t, eps=eps, x_t=x_t, alphas_bar_sqrt=a,
                 one_minus_alphas_bar_sqrt=b)
        cases.append(dict(name=name, kind="diffusion_gan_q_sample", io=f"{name}.npz",
                          layout="NCHW", diffusion=diff, rtol=1e-6, atol=1e-6))
    (tmp_path / "manifest.json").write_text(json.dumps({"cases": cases}))
    results = run_manifest(tmp_path, echo=lambda _: None)
    assert len(results) == 4 and all(r.passed for r in results), [r.line() for r in results]


def test_parity_dgan_case_errors_name_the_field(tmp_path):
    from dg_jax.parity.runner import run_case

    np.savez(tmp_path / "io.npz", r_d=np.zeros(3), p=np.zeros(3), T=np.zeros(3))
    bad = run_case(dict(name="c", kind="diffusion_gan_adaptive", io="io.npz",
                        config=dict(t_min=1, t_max=5), rtol=0, atol=0), tmp_path)
    assert not bad.passed and "config lacks" in bad.detail and "ada_kimg" in bad.detail
    cosine = run_case(dict(name="c", kind="diffusion_gan_q_sample", io="io.npz", rtol=0, atol=0,
                           diffusion=dict(beta_schedule="cosine", beta_start=1e-4,
                                          beta_end=2e-2, T=5, noise_std=0.05)), tmp_path)
    assert not cosine.passed and "'linear' only" in cosine.detail
