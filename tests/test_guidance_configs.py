"""The guidance-training configs end to end at smoke size (through `launch.main`), resume with
the importance-sampling state, and the pipeline's input errors."""
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cifar10_iddpm, digits_guidance, fashion_guidance
from dg_jax.data.images import FASHION_MNIST_DIR
from dg_jax.experiments.guidance import pipeline as guidance_train

ROOT = pathlib.Path(__file__).resolve().parents[1]


def launch(config: str, workdir: pathlib.Path) -> str:
    cmd = [sys.executable, "-m", "launch.main", f"--config=configs/{config}",
           f"--workdir={workdir}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_digits_guidance_smoke_through_launch_main(tmp_path):
    out = launch("digits_guidance.py:smoke", tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    smoke = digits_guidance.get_config("smoke")
    for method, weights in (("cg", smoke.sweep.cg_weights), ("cfg", smoke.sweep.cfg_weights)):
        rows = saved[method]
        assert [r["weight"] for r in rows] == sorted(weights)
        for r in rows:
            assert set(r) == {"weight", "accuracy", "fd", "precision", "recall"}
            assert 0.0 <= r["accuracy"] <= 1.0 and np.isfinite(r["fd"])
            assert 0.0 <= r["precision"] <= 1.0 and 0.0 <= r["recall"] <= 1.0
    assert set(saved["vlb_bits_per_dim"]) == {"hybrid_is", "simple"}
    assert all(np.isfinite(v) for v in saved["vlb_bits_per_dim"].values())
    assert (tmp_path / "guidance.png").stat().st_size > 10_000
    assert "[sweep] cfg w=2" in out
    for name in ("score", "classifier", "vlb_hybrid_is", "vlb_simple"):
        assert (tmp_path / "checkpoints" / name).is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("config", ["cifar10_iddpm.py:kl,smoke", "cifar10_edm_train.py:cond,smoke",
                                    "imagenet64_adm_cfg.py:smoke"])
def test_paper_config_smoke_through_launch_main(config, tmp_path):
    out = launch(config, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["score_steps"] == 2
    assert "[score] step 2/2" in out
    if config.startswith("imagenet64"):
        assert "[classifier] step 2/2" in out


@pytest.mark.slow
def test_resume_restores_importance_sampling_state(tmp_path):
    config = cifar10_iddpm.get_config("kl,smoke")  # 8 fake devices, in process
    guidance_train.run(config, str(tmp_path))
    config.score.train.num_steps = 3
    captured = {}
    original = guidance_train._fit

    def spy(run, name, state, step_fn, batch_fn, t, steps_field):
        out = original(run, name, state, step_fn, batch_fn, t, steps_field)
        captured[name] = out
        return out

    guidance_train._fit = spy
    try:
        results = guidance_train.run(config, str(tmp_path))
    finally:
        guidance_train._fit = original
    assert results["score_steps"] == 3
    counts = np.asarray(jax.device_get(captured["score"].loss_state.loss_counts))
    assert counts.sum() == 3 * config.score.train.batch_size  # 2 restored steps + 1 new


def test_errors_name_the_field(tmp_path):
    config = digits_guidance.get_config("smoke")
    config.score.flags.class_cond = False
    with pytest.raises(ValueError, match="score.flags.class_cond"):
        guidance_train.run(config, str(tmp_path / "a"))
    config = digits_guidance.get_config("smoke")
    config.score.train.batch_size = 12
    with pytest.raises(ValueError, match="score.train.batch_size=12"):
        guidance_train.run(config, str(tmp_path / "b"))
    config = digits_guidance.get_config("smoke")
    config.score.schedule_sampler = "bogus"
    with pytest.raises(ValueError, match="score.schedule_sampler"):
        guidance_train.run(config, str(tmp_path / "c"))
    config = digits_guidance.get_config("smoke")
    config.score.flags.num_channels = 24
    config.stages = ("score",)
    with pytest.raises(ValueError, match="score.flags.num_channels"):
        guidance_train.run(config, str(tmp_path / "d"))


def test_unknown_config_variant_names_the_file():
    import pytest

    from configs.cifar10_iddpm import get_config

    with pytest.raises(ValueError,
                       match=r"configs/cifar10_iddpm.py: unknown config argument\(s\) \['big'\]"):
        get_config("smoke,big")
    assert get_config("kl,smoke").score.schedule_sampler == "loss-second-moment"


def test_digits_guidance_networks_keep_their_architecture():
    """The default digits_guidance networks, built from guided-diffusion flags through
    dg_jax.models.adm_flags, have the parameter shapes the measured numbers were taken with."""
    import jax.numpy as jnp

    from dg_jax.experiments.guidance import models as GM

    config = digits_guidance.get_config()
    d = config.data
    x, t = jnp.zeros((1, 8, 8, 1)), jnp.zeros((1,), jnp.int32)

    def sizes(module, *args):
        params = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *args))["params"]
        leaves = jax.tree_util.tree_leaves(params)
        return len(leaves), sum(int(np.prod(p.shape)) for p in leaves)

    score = GM.build_unet(config.score.flags, d, num_classes=GM.score_num_classes(config))
    assert (score.in_channels, score.out_channels, score.num_classes) == (1, 2, 11)
    assert sizes(score, x, t, t) == (111, 706402)
    assert sizes(GM.build_classifier(config.classifier.flags, d), x, t) == (60, 330218)
    assert sizes(GM.build_unet(config.vlb.flags, d, learn_sigma=True), x, t) == (110, 704994)
    assert sizes(GM.build_unet(config.vlb.flags, d, learn_sigma=False), x, t) == (110, 704705)
    config.score.flags.image_size = 16
    with pytest.raises(ValueError, match="score.flags.image_size=16 contradicts the data"):
        GM.build_unet(config.score.flags, d, num_classes=11)
    config.classifier.flags.bogus = 1
    with pytest.raises(ValueError, match=r"classifier.flags: unknown classifier flag\(s\) \['bogus'\]"):
        GM.build_classifier(config.classifier.flags, d)


@pytest.mark.slow
def test_fashion_guidance_smoke_sweeps_cg_with_both_samplers(tmp_path):
    """configs/fashion_guidance.py:smoke on a 200-image Fashion-MNIST subset: CG with DDPM's
    mean shift and DDIM's eps shift, CFG, each scored (accuracy, FD, precision, recall) by the
    Fashion-MNIST evaluation network."""
    if not pathlib.Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST_DIR} "
                    "(apt-get install -y dataset-fashion-mnist)")
    launch("fashion_guidance.py:smoke", tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    smoke = fashion_guidance.get_config("smoke")
    for method, weights in (("cg", smoke.sweep.cg_weights), ("cg_ddim", smoke.sweep.cg_weights),
                            ("cfg", smoke.sweep.cfg_weights)):
        rows = saved[method]
        assert [r["weight"] for r in rows] == sorted(weights)
        for r in rows:
            assert set(r) == {"weight", "accuracy", "fd", "precision", "recall"}
            assert np.isfinite(r["fd"])
    assert 0 < saved["scorer_test_accuracy"] <= 1
    # CG guides the conditional branch (ADM-G): at w = 0 it is the conditional model, the same
    # DDPM samples as CFG at w = 0
    assert smoke.sweep.cg_base == "conditional"
    assert saved["cg"][0]["weight"] == saved["cfg"][0]["weight"] == 0.0
    np.testing.assert_allclose(saved["cg"][0]["fd"], saved["cfg"][0]["fd"], rtol=1e-5)
    assert saved["cg"][0]["accuracy"] == saved["cfg"][0]["accuracy"]
    assert (tmp_path / "guidance.png").stat().st_size > 10_000
    assert (tmp_path / "eval_classifier" / "classifier.json").is_file()
    # DG on top of CFG at the sweep's lowest-FD weight; DG weight 0 is that CFG row again (the
    # same latents, labels and noise)
    dg = saved["cfg_dg"]
    best = min(saved["cfg"], key=lambda r: r["fd"])
    assert dg["cfg_weight"] == best["weight"]
    assert [r["weight"] for r in dg["rows"]] == sorted(smoke.cfg_dg.weights)
    assert dg["rows"][0]["weight"] == 0.0
    np.testing.assert_allclose(dg["rows"][0]["fd"], best["fd"], rtol=1e-4)
    assert dg["rows"][0]["accuracy"] == best["accuracy"]
    assert dg["rows"][-1]["fd"] != dg["rows"][0]["fd"]  # DG moved the samples
    assert [r["t"] for r in dg["disc_accuracy_by_t"]] == sorted({r["t"] for r in
                                                                 dg["disc_accuracy_by_t"]})
    assert (tmp_path / "cfg_dg.png").stat().st_size > 10_000
    fake = np.load(tmp_path / "cfg_dg" / "fake.npz")
    assert fake["images"].shape == (smoke.cfg_dg.num_fake, 28, 28, 1)
    assert fake["images"].dtype == np.uint8
    # a rerun reads the sweep and cfg_dg results back instead of sampling again
    out = launch("fashion_guidance.py:smoke", tmp_path)
    assert "[sweep] done earlier" in out and "[cfg_dg] done earlier" in out
    assert json.loads((tmp_path / "results.json").read_text()) == saved


def test_cfg_dg_discriminator_reads_the_classifier_at_the_model_timestep():
    """The cfg_dg discriminator's feature network is the noisy classifier, called with DG's
    tau = t / 999: its features at tau equal the classifier's at the integer model step t, and
    the head is sized from those features (a contradicting head flag names the field)."""
    from dg_jax.errors import ConfigError
    from dg_jax.experiments.guidance import cfg_dg
    from dg_jax.experiments.guidance import models as GM

    config = fashion_guidance.get_config("smoke")
    clf = GM.build_classifier(config.classifier.flags, config.data)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 28, 28, 1))
    t = jnp.array([0, 7, 19], jnp.int32)
    params = clf.init(jax.random.PRNGKey(1), x[:1], t[:1])["params"]
    disc = cfg_dg.build_discriminator(config, clf, params, (28, 28, 1))
    want = clf.apply({"params": params}, x, t, feature=True)
    got = disc.features(x, t.astype(jnp.float32) / cfg_dg.TIME_SCALE)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    logits = disc.logit(disc.trainable, x, t / 999.0, jnp.array([0, 3, 9]))
    assert logits.shape == (3,)
    config.cfg_dg.head_flags.in_channels = 7
    with pytest.raises(ConfigError, match="cfg_dg.head_flags.in_channels"):
        cfg_dg.build_discriminator(config, clf, params, (28, 28, 1))


def test_ddim_sweeps_use_their_own_respacing(tmp_path):
    """sweep.ddim_respacing ("ddimN") respaces DDIM's process with guided-diffusion's fixed
    stride from t = 0 (never t = T - 1, where the cosine schedule's alpha_bar is ~1e-9 and
    condition_score's 1 / sqrt(alpha_bar) blows up the gradient); DDPM keeps sweep.respacing;
    a respacing that does not fit names its field."""
    from dg_jax.experiments.guidance.sweep import sampler_diffusion

    config = fashion_guidance.get_config("smoke")  # 20 steps; respacing "4", ddim "ddim4"
    np.testing.assert_array_equal(sampler_diffusion(config, "ddim").timestep_map, [0, 5, 10, 15])
    np.testing.assert_array_equal(sampler_diffusion(config, "ddpm").timestep_map, [0, 6, 13, 19])
    config.sweep.ddim_respacing = ""
    np.testing.assert_array_equal(sampler_diffusion(config, "ddim").timestep_map, [0, 6, 13, 19])
    config.sweep.ddim_respacing = "ddim30"
    with pytest.raises(ValueError, match=r"sweep.ddim_respacing='ddim30'"):
        guidance_train.run(config, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()  # refused before any work
