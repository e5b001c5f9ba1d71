"""The DiT-G++ pipeline (configs/imagenet256_dit_dg.py): its smoke run on 8 fake devices, what a
resumed run redoes, the sampler's wiring against the library functions, official-format files
(../shared/fixtures/parity_dit) through every loader, and its input errors."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.imagenet256_dit_dg import get_config
from dg_jax.data import shards
from dg_jax.errors import ConfigError
from dg_jax.experiments.dit_dg import pipeline as P
from dg_jax.guidance.discriminator import latent_dg_cond_fn
from dg_jax.parallel import make_mesh
from dg_jax.samplers.dit_gpp import dit_gpp_sample


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dit_dg_smoke")
    results = P.run(get_config("smoke"), str(workdir))
    return workdir, results


@pytest.mark.slow
def test_smoke_pipeline_outputs(smoke_run):
    workdir, results = smoke_run
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["fd_dg"] == pytest.approx(results["fd_dg"])
    for key in ("fd_no_dg", "fd_dg", "real_floor"):
        assert np.isfinite(saved[key])
    real = shards.load_npz(workdir / P.REAL_LATENTS)
    assert real["latents"].shape == (256, 8, 8, 4) and real["labels"].shape == (256,)
    assert np.std(real["latents"]) > 0.01  # posterior samples of a random VAE, not zeros
    config = get_config("smoke")
    fake, fake_labels = P.read_fake(config, workdir)
    assert fake.shape == (32, 8, 8, 4) and fake_labels.shape == (32,)
    assert sorted(p.name for p in (workdir / P.FAKE_LATENTS).glob("*.npz")) == [
        "latents_000000.npz", "latents_000001.npz"]
    a, la = shards.read_shards(workdir / "samples_nodg")
    b, lb = shards.read_shards(workdir / "samples_dg")
    assert a.shape == b.shape == (32, 16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(la, lb)  # the same latents and labels with and without DG
    assert np.any(a != b)  # DG moved the samples
    assert (workdir / "grid.png").stat().st_size > 1000
    assert (workdir / "disc" / "metrics.jsonl").is_file()


@pytest.mark.slow
def test_a_new_dg_scale_redoes_only_sampling_and_evaluation(smoke_run, capsys):
    workdir, _ = smoke_run
    kept = [workdir / P.REAL_LATENTS, *sorted((workdir / P.FAKE_LATENTS).glob("*.npz"))]
    before = {p: p.stat().st_mtime_ns for p in kept}
    nodg_before, _ = shards.read_shards(workdir / "samples_nodg")
    dg_before, _ = shards.read_shards(workdir / "samples_dg")
    config = get_config("smoke")
    config.dg.scale = 20.0
    capsys.readouterr()
    P.run(config, str(workdir))
    out = capsys.readouterr().out
    assert "[encode]" not in out and "[generate]" not in out and "training steps" not in out
    assert {p: p.stat().st_mtime_ns for p in kept} == before
    nodg, _ = shards.read_shards(workdir / "samples_nodg")
    dg, _ = shards.read_shards(workdir / "samples_dg")
    np.testing.assert_array_equal(nodg, nodg_before)  # redone, identical: same seed and noise
    assert np.abs(dg.astype(int) - nodg).mean() > np.abs(dg_before.astype(int) - nodg).mean()


@pytest.mark.slow
def test_sampler_is_the_library_sampler_with_the_config_settings():
    """Networks.sampler = dit_gpp_sample with cfg.* and (with a discriminator) the latent DG
    cond_fn of dg.*, on the same noise key; decode=False gives latents."""
    config = get_config("smoke")
    config.cfg.update(LT_cfg=2.0, ST_cfg=4.0, branch_time=300)
    config.dg.update(scale=3.0, time_min=200)
    nets = P.Networks(config, make_mesh())
    rng = np.random.default_rng(0)
    lat = jnp.asarray(rng.normal(size=(8, 8, 8, 4)), jnp.float32)
    lab = jnp.asarray(rng.integers(0, 10, 8), jnp.int32)
    key = jax.random.PRNGKey(3)
    params = nets.disc.trainable

    def direct(cond_fn):
        return dit_gpp_sample(nets.diffusion, lambda x, t, y: nets.dit.apply(
            jax.device_get(nets.dit_vars), x, t, y), lat, lab, null_label=10, LT_cfg=2.0,
            ST_cfg=4.0, branch_time=300, cond_fn=cond_fn, rng=key)

    cond = latent_dg_cond_fn(lambda x, tau, y: nets.disc.logit(params, x, tau, y), 3.0, 200)
    for disc_params, cond_fn in ((None, None), (params, cond)):
        got = nets.sampler(disc_params, decode=False)(lat, lab, key)
        np.testing.assert_allclose(np.asarray(got), np.asarray(direct(cond_fn)), rtol=1e-4,
                                   atol=1e-5)
    guided = nets.sampler(params, decode=False)(lat, lab, key)
    plain = nets.sampler(None, decode=False)(lat, lab, key)
    assert float(jnp.max(jnp.abs(guided - plain))) > 1e-4
    images = nets.sampler(None)(lat, lab, key)
    assert images.shape == (8, 16, 16, 3)


@pytest.mark.slow
def test_official_files_through_every_loader(shared_fixtures, tmp_path):
    """The DiT .pt, the diffusers VAE folder and DG_imagenet's classifier + discriminator .pt
    (parity_dit's tiny random files) drive the sample and evaluate stages."""
    root = shared_fixtures / "parity_dit"
    cases = {c["kind"]: c for c in json.loads((root / "manifest.json").read_text())["cases"]}
    dit_arch = cases["dit_forward"]["arch"]
    disc_case = cases["dg_discriminator"]
    classifier_arch = cases["adm_classifier"]["arch"]
    config = get_config("smoke")
    config.stages = ("disc", "sample", "evaluate")
    config.data.update(resolution=32, num_classes=dit_arch["num_classes"])
    config.vae.update(source="converted", checkpoint=str(root / "sd_vae"))
    config.dit.update(source="converted", checkpoint=str(root / "dit.pt"))
    config.dit.arch = dit_arch
    config.disc.update(source="converted", checkpoint=str(root / disc_case["checkpoint"]),
                       classifier=str(root / disc_case["classifier"]))
    config.disc.classifier_flags = classifier_arch
    config.disc.head_flags = disc_case["arch"]
    config.dg.scale = 5.0
    results = P.run(config, str(tmp_path / "wd"))
    assert np.isfinite(results["fd_dg"]) and np.isfinite(results["fd_no_dg"])
    a, _ = shards.read_shards(tmp_path / "wd" / "samples_nodg")
    b, _ = shards.read_shards(tmp_path / "wd" / "samples_dg")
    assert a.shape == (32, 32, 32, 3) and np.any(a != b)
    assert not (tmp_path / "wd" / "latents").exists()  # nothing encoded or generated


@pytest.mark.parametrize("change, match", [
    (lambda c: c.disc.update(conditional=False), "disc.conditional"),
    (lambda c: c.eval.update(path_samples=4), "eval.path_samples"),
    (lambda c: c.data.update(source="digits"), "data.source"),
    (lambda c: c.dg.update(time_min=1000), "dg.time_min"),
    (lambda c: c.generate.update(shard_size=24), "generate.shard_size"),
    (lambda c: c.dit.arch.update(input_size=16), "dit.arch.input_size"),
    (lambda c: c.data.update(resolution=17), "downsampling factor"),
    (lambda c: c.dit.arch.update(num_classes=7), "data.num_classes"),
])
def test_errors_name_the_field_before_any_work(tmp_path, change, match):
    config = get_config("smoke")
    change(config)
    with pytest.raises(ConfigError, match=match):
        P.run(config, str(tmp_path / "wd"))
    assert not (tmp_path / "wd").exists()
