"""`python -m launch.benchmark` at the :smoke size on CPU: runs, writes the JSON, says it is CPU.
A smoke test only: no timing is asserted."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_smoke_float32_and_bfloat16(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-m", "launch.benchmark", "--config=configs/cifar10_edm_dg.py:smoke",
         f"--workdir={tmp_path}", "--repeats=1", "--inception_batch=8",
         "--dtypes=float32,bfloat16"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads((tmp_path / "benchmark.json").read_text())
    assert result["platform"] == "cpu" and "CPU" in result["note"]
    assert set(result["compute_dtypes"]) == {"float32", "bfloat16"}
    for dt, entry in result["compute_dtypes"].items():
        assert entry["score_compute_dtype"] == dt and entry["disc_compute_dtype"] == dt
        for key in ("sampling_plain", "sampling_dg", "score_training", "disc_training"):
            assert entry[key]["images_per_second"] > 0, (dt, key)
        assert entry["sampling_plain"]["network_evaluations"] == 5  # 3 Heun steps
        for key in ("sampling_plain", "sampling_dg"):
            assert entry[key]["compile_cold_seconds"] > 0 and entry[key]["compile_warm_seconds"] > 0
        assert entry["dg_overhead"] > 0
        # the training step's count includes the backward pass: more than one forward evaluation
        net = entry["sampling_plain"]["gflop_per_image"] / 5
        assert entry["score_training"]["gflop_per_image"] > 2 * net
    assert result["sampling_plain"] == result["compute_dtypes"]["float32"]["sampling_plain"]
    assert set(result["bfloat16_speedup"]) == {"disc_training", "sampling_plain", "sampling_dg",
                                               "score_training"}
    assert result["inception_features"]["images_per_second"] > 0


@pytest.mark.slow
def test_benchmark_dit_g_plus_plus_smoke(tmp_path):
    """The DiT-G++ config's branch: DiT forward, DiT-G++ sampling with and without DG and the VAE
    decode, with random weights of the config's architectures."""
    out = subprocess.run(
        [sys.executable, "-m", "launch.benchmark", "--config=configs/imagenet256_dit_dg.py:smoke",
         f"--workdir={tmp_path}", "--repeats=1", "--dtypes=float32"],
        cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True,
        timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads((tmp_path / "benchmark.json").read_text())
    entry = result["dit_dg"]["float32"]
    for key in ("dit_forward", "sampling_plain", "sampling_dg", "vae_decode"):
        assert entry[key]["images_per_second"] > 0 and entry[key]["batch_size"] == 16, key
    assert entry["sampling_dg"]["steps"] == 4 and entry["latent_shape"] == [8, 8, 4]
    assert entry["dg_overhead"] > 0


def test_benchmark_rejects_unknown_dtype(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "launch.benchmark", "--config=configs/cifar10_edm_dg.py:smoke",
         f"--workdir={tmp_path}", "--dtypes=float32,fp8"],
        cwd=ROOT, env={**os.environ, "JAX_PLATFORMS": "cpu"}, capture_output=True, text=True,
        timeout=300)
    assert out.returncode != 0
    assert "--dtypes='fp8'" in out.stderr


@pytest.mark.slow
def test_random_weights_need_no_checkpoint(monkeypatch):
    """--weights=random (the default) benchmarks the config's architectures without its
    checkpoints; a discriminator classifier with no architecture in the config is named."""
    import pytest

    import launch.benchmark
    from configs.cifar10_edm_dg import get_config as cifar10
    from configs.imagenet256_adm_dg import get_config as imagenet256
    from launch.benchmark import _discriminator, _score_model

    config = cifar10()
    assert config.score.source == "converted" and config.disc.classifier
    assert config.disc.classifier_flags.classifier_width == 128  # DG's 32x32 classifier
    assert config.disc.classifier_flags.classifier_depth == 4

    def refuse(*args, **kwargs):
        raise AssertionError("--weights=random read a checkpoint")

    monkeypatch.setattr(launch.benchmark, "load_weights", refuse)  # the name it calls
    config.score.arch.init_kwargs.update(model_channels=32, channel_mult=[1], num_blocks=1)
    config.disc.classifier_flags.update(classifier_width=64, classifier_depth=1)
    precond, params = _score_model(config, random_weights=True)
    assert precond.img_resolution == 32 and params
    disc = _discriminator(config, "float32", random_weights=True)
    assert disc.features is not None and disc.trainable  # the frozen classifier's random weights
    with pytest.raises(ValueError, match="disc.classifier_flags is empty"):
        _discriminator(imagenet256(), "float32", random_weights=True)
