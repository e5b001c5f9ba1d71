"""The image DG pipeline at smoke size (digits), its resume behaviour and its input errors."""
import json

import numpy as np
import pytest

from configs import cifar10_edm_dg, digits_dg
from dg_jax.data import shards
from dg_jax.errors import ConfigError, WorkdirError
from dg_jax.experiments.dg_images import models as dg_images_models
from dg_jax.experiments.dg_images import pipeline as dg_images


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("digits_smoke")
    results = dg_images.run(digits_dg.get_config("smoke"), str(workdir))  # 8 fake devices
    return workdir, results


@pytest.mark.slow
def test_smoke_pipeline_outputs(smoke_run):
    workdir, results = smoke_run
    saved = json.loads((workdir / "results.json").read_text())
    for key in ("fd_no_dg", "fd_dg"):
        assert np.isfinite(saved[key])
    for name in ("no_dg", "dg"):
        assert {"fd", "precision", "recall", "accuracy"} <= set(saved[name])
    assert len(saved["log_ratio_path"]["dg"]) == digits_dg.get_config("smoke").sampler.num_steps
    assert (workdir / "grid.png").stat().st_size > 1000
    assert (workdir / "log_ratio.png").stat().st_size > 1000
    images, labels = shards.read_shards(workdir / "samples_dg")
    assert images.shape == (64, 8, 8, 1) and images.dtype == np.uint8
    assert labels.shape == (64,)
    nodg, nodg_labels = shards.read_shards(workdir / "samples_nodg")
    np.testing.assert_array_equal(labels, nodg_labels)  # same seeds with and without DG


@pytest.mark.slow
def test_resume_skips_finished_work(smoke_run):
    workdir, results = smoke_run
    before = {p.name: p.stat().st_mtime for p in (workdir / "fake").iterdir()}
    config = digits_dg.get_config("smoke")
    config.stages = ("score", "generate")
    dg_images.run(config, str(workdir))
    after = {p.name: p.stat().st_mtime for p in (workdir / "fake").iterdir()}
    assert before == after


@pytest.mark.slow
def test_reference_smaller_than_sample_count(smoke_run):
    workdir, _ = smoke_run
    config = digits_dg.get_config("smoke")
    config.stages = ("evaluate",)
    config.eval.num_samples = config.sample.num_samples = 5000
    with pytest.raises(ValueError, match="fewer than eval.num_samples=5000"):
        dg_images.run(config, str(workdir))  # refused before any sampling


@pytest.mark.slow
def test_missing_shard_is_named(smoke_run, tmp_path):
    workdir, _ = smoke_run
    import shutil

    copy = tmp_path / "samples_dg"
    shutil.copytree(workdir / "samples_dg", copy)
    shards.shard_path(copy, 1).unlink()
    with pytest.raises(shards.ShardError, match="samples_000001.npz"):
        shards.read_shards(copy)


def test_discriminator_for_other_resolution_or_labels():
    config = digits_dg.get_config("smoke")
    config.disc.kind = "adm"
    config.disc.classifier_flags = dict(image_size=16, classifier_use_fp16=False,
                                        classifier_width=32, classifier_depth=1,
                                        classifier_attention_resolutions="", out_channels=1,
                                        classifier_use_scale_shift_norm=True,
                                        classifier_resblock_updown=True,
                                        classifier_pool="attention")
    with pytest.raises(ValueError, match="expects 16x16 images but data.resolution is 8"):
        dg_images_models.build_discriminator(config)
    config = digits_dg.get_config("smoke")
    config.data.num_classes = 5
    with pytest.raises(ValueError, match="label_dim=10 but data.num_classes=5"):
        dg_images_models.build_score_model(config)


def test_shard_writes_are_atomic(tmp_path):
    imgs = np.zeros((4, 2, 2, 1), np.uint8)
    shards.write_shard(tmp_path, 0, imgs, np.arange(4))
    (tmp_path / "samples_000001.npz.tmp").write_bytes(b"partial")  # a killed writer's leftover
    shards.write_manifest(tmp_path, num_samples=4, shard_size=4)
    got, labels = shards.read_shards(tmp_path)
    np.testing.assert_array_equal(got, imgs)
    np.testing.assert_array_equal(labels, np.arange(4))
    with pytest.raises(shards.ShardError, match="missing shards"):
        shards.write_manifest(tmp_path, num_samples=8, shard_size=4)


def test_real_data_from_an_image_folder_with_class_subfolders(tmp_path):
    """data.source='folder': PNGs below data.path, labels from the sorted subfolder names."""
    from PIL import Image

    rng = np.random.default_rng(0)
    written = {}
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
            written[(cls, i)] = arr
    config = cifar10_edm_dg.get_config("smoke")
    config.data.source, config.data.path = "folder", str(tmp_path)
    images, labels = dg_images_models.load_real(config)
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(images[4], written[("dog", 1)] / 127.5 - 1.0, atol=1e-6)
    config.data.resolution = 16
    with pytest.raises(ValueError, match="data.resolution"):
        dg_images_models.load_real(config)


def test_tfds_source_without_tensorflow_says_what_to_install():
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed here")
    config = cifar10_edm_dg.get_config("smoke")
    config.data.source, config.data.path = "tfds", "cifar10"
    with pytest.raises(ConfigError, match=r"data\.source='tfds'.*\[tf\]"):
        dg_images_models.load_real(config)


@pytest.mark.slow
def test_sampling_change_redoes_only_sampling_and_evaluation(smoke_run, tmp_path):
    """In a finished workdir a new DG weight reuses the score model, the fakes and the
    discriminator (their files untouched) and writes new DG samples and results."""
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(smoke_run[0], workdir)
    kept = [p for d in ("fake", "checkpoints") for p in (workdir / d).rglob("*") if p.is_file()]
    stamps = {p: p.stat().st_mtime_ns for p in kept}
    before = shards.read_shards(workdir / "samples_dg")[0]
    config = digits_dg.get_config("smoke")
    config.dg.weight_1st = 10.0
    results = dg_images.run(config, str(workdir))
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps
    assert not np.array_equal(shards.read_shards(workdir / "samples_dg")[0], before)
    assert results["fd_no_dg"] == smoke_run[1]["fd_no_dg"]
    config.disc.channels = [16, 16]
    with pytest.raises(WorkdirError, match=r"'disc'.*disc\.channels"):
        dg_images.run(config, str(workdir))


@pytest.mark.slow
def test_dg_workflow_with_official_pretrained_parts(shared_fixtures, tmp_path):
    """DG's README workflow on official-format files: convert EDM's pickle and DG's classifier
    + head, then sample with and without DG and evaluate against a reference-statistics .npz,
    with no data, no generation and no training; the raw pickle is accepted directly too."""
    import json

    from dg_jax.eval.stats_io import feature_statistics, save_stats
    from launch.convert import main as convert

    parity = shared_fixtures / "parity"
    case = next(c for c in json.loads((parity / "manifest.json").read_text())["cases"]
                if c["kind"] == "dg_discriminator")
    assert convert(["--kind=edm", f"--checkpoint={parity / 'edm_ddpmpp_vp_uncond.pkl'}",
                    f"--output={tmp_path / 'edm'}"]) == 0
    assert convert(["--kind=dg_discriminator", f"--classifier={parity / case['classifier']}",
                    f"--checkpoint={parity / case['checkpoint']}",
                    f"--flags={json.dumps(case['classifier_arch'])}",
                    f"--head_flags={json.dumps(case['arch'])}",
                    f"--output={tmp_path / 'disc'}"]) == 0
    feats = np.random.default_rng(0).uniform(0, 1, (256, 8 * 8 * 3))  # pixel features
    save_stats(tmp_path / "ref.npz", *feature_statistics(feats))

    def config(score_checkpoint):
        c = cifar10_edm_dg.get_config()
        c.score.checkpoint = str(score_checkpoint)
        c.disc.source, c.disc.checkpoint = "converted", str(tmp_path / "disc")
        c.data.source, c.data.path = "npz", str(tmp_path / "no_such_data.npz")  # never read
        c.sampler.num_steps = 4
        c.sample = dict(num_samples=8, batch_size=8, shard_size=8)
        c.eval = dict(ref_stats=str(tmp_path / "ref.npz"), features="pixels",
                      inception_weights="", num_samples=8, batch_size=8, path_samples=0,
                      classifier_steps=0)
        return c

    results = dg_images.run(config(tmp_path / "edm"), str(tmp_path / "run"))
    assert results["reference"].endswith("ref.npz") and np.isfinite(results["fd_dg"])
    assert not (tmp_path / "run" / "fake").exists()
    assert not (tmp_path / "run" / "checkpoints" / "disc").exists()
    dg, nodg = (shards.read_shards(tmp_path / "run" / n)[0] for n in ("samples_dg", "samples_nodg"))
    assert dg.shape == (8, 32, 32, 3) and not np.array_equal(dg, nodg)
    direct = dg_images.run(config(parity / "edm_ddpmpp_vp_uncond.pkl"), str(tmp_path / "run2"))
    assert direct["fd_dg"] == pytest.approx(results["fd_dg"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("config_arg", ["cifar10_edm_dg:smoke", "cifar10_edm_dg:cond,smoke",
                                        "ffhq64_edm_dg:smoke", "imagenet256_adm_dg:smoke"])
def test_every_dg_image_config_smoke_runs(tmp_path, config_arg):
    """Each DG image config's :smoke variant runs end to end (random tiny networks, synthetic
    data) through the registry, as `launch.main` runs it, and reports finite distances."""
    import importlib

    from dg_jax.experiments.registry import get_pipeline

    name, arg = config_arg.split(":")
    config = importlib.import_module(f"configs.{name}").get_config(arg)
    results = get_pipeline(config.pipeline)(config, str(tmp_path), source=config_arg)
    assert np.isfinite(results["fd_no_dg"]) and np.isfinite(results["fd_dg"])
    assert (tmp_path / "results.json").exists() and (tmp_path / "grid.png").exists()
