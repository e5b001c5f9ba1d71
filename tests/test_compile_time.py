"""Compile time flat in the step count, and the persistent compilation cache.

Compile time is not asserted with a clock (no timed assertions): a sampler whose steps are one
`lax.scan` body lowers to the same program for 8 and 64 steps apart from the length of its step
tables, so XLA compiles the same amount of code. tests/test_samplers.py checks EDM Heun this
way; here EDM-G++ with DG (first and second order, boosting) and guided DDPM / DDIM."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import exact_logit_fn
from dg_jax import compile_cache
from dg_jax.diffusion.iddpm import create_gaussian_diffusion
from dg_jax.guidance.discriminator import dg_cond_fn, dg_correction_fn
from dg_jax.samplers.ddpm import ddim_sample, ddpm_sample
from dg_jax.samplers.edm import edm_sigma_steps
from dg_jax.samplers.edm_gpp import make_edm_gpp_sampler


def _normalised(text: str) -> str:
    """The lowered program with array lengths and dense constants (the step tables) masked."""
    text = re.sub(r"tensor<\d+x", "tensor<Nx", text)
    return re.sub(r"\[\d+:\d+\]|dense<[^>]*>|array<i64: [^>]*>", "...", text)


def _denoise(x, sigma, labels=None):
    return x / (1.0 + sigma[:, None] ** 2)  # the exact denoiser of N(0, I) data


def test_edm_gpp_with_dg_lowers_to_the_same_program_for_8_and_64_steps():
    corr = dg_correction_fn(exact_logit_fn, with_log_ratio=True)
    latents, key = jnp.zeros((4, 2)), jax.random.PRNGKey(0)
    texts = []
    for n in (8, 64):
        sampler = make_edm_gpp_sampler(_denoise, edm_sigma_steps(n), corr, weight_1st=1.0,
                                       weight_2nd=1.0, boosting=True, S_churn=10.0)
        texts.append(_normalised(sampler.lower(latents, None, key).as_text()))
    assert texts[0] == texts[1]


@pytest.mark.parametrize("sample", [ddpm_sample, ddim_sample], ids=["ddpm", "ddim"])
def test_guided_iddpm_samplers_lower_to_the_same_program_for_8_and_64_steps(sample):
    def model_fn(x, t, y):
        return 0.1 * x * (t[:, None] / 1000.0)

    cond_fn = dg_cond_fn(lambda x, tau, y: jnp.sum(x, -1) * tau, weight=2.0, time_min=0.1)
    texts = []
    for n in (8, 64):
        diffusion = create_gaussian_diffusion(steps=1000, timestep_respacing=str(n))
        fn = jax.jit(lambda z, k, d=diffusion: sample(d, model_fn, z, rng=k, cond_fn=cond_fn))
        texts.append(_normalised(fn.lower(jnp.zeros((4, 2)), jax.random.PRNGKey(0)).as_text()))
    assert texts[0] == texts[1]


def test_cache_directory_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.resolve_cache_dir() == tmp_path / "xdg" / "dg_jax" / "jax"
    monkeypatch.setenv(compile_cache.ENV_VAR, str(tmp_path / "env"))
    assert compile_cache.resolve_cache_dir() == tmp_path / "env"
    assert compile_cache.resolve_cache_dir(tmp_path / "flag") == tmp_path / "flag"  # flag first
    for off in ("off", "OFF", "none", "0", "false", ""):
        assert compile_cache.resolve_cache_dir(off) is None
        monkeypatch.setenv(compile_cache.ENV_VAR, off)
        assert compile_cache.resolve_cache_dir() is None


def test_unwritable_cache_directory_names_the_flag(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="--compilation_cache"):
        compile_cache.enable_compilation_cache(blocker / "cache")


def test_programs_are_written_to_and_read_back_from_the_cache(tmp_path):
    """A compiled program lands in the cache folder; with JAX's in-memory caches cleared the
    same program is read back (no new entry) and computes the same values."""
    keys = ("jax_enable_compilation_cache", "jax_compilation_cache_dir",
            "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    saved = {k: getattr(jax.config, k) for k in keys}
    try:
        folder = compile_cache.enable_compilation_cache(tmp_path / "cache",
                                                        min_compile_seconds=0.0)
        fn = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + 17.0)
        x = jnp.arange(12.0).reshape(3, 4)
        first = np.asarray(fn(x))
        entries = sorted(p.name for p in folder.iterdir())
        assert entries, "nothing was written to the compilation cache"
        jax.clear_caches()
        np.testing.assert_array_equal(np.asarray(fn(x)), first)
        assert sorted(p.name for p in folder.iterdir()) == entries
        assert compile_cache.enable_compilation_cache("off") is None
        assert not jax.config.jax_enable_compilation_cache
    finally:
        for k, v in saved.items():
            jax.config.update(k, v)
        compile_cache.compilation_cache.reset_cache()
