"""The 2-D DG pipeline end to end (smoke size) and its input errors."""
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import toy2d as toy_config
from dg_jax.errors import NonFiniteError, WorkdirError
from dg_jax.experiments.toy2d import pipeline as toy2d
from dg_jax.toy.gmm import GaussianMixture


def smoke():
    return toy_config.get_config("smoke")


@pytest.mark.slow
def test_smoke_pipeline_writes_results_and_resumes(tmp_path):
    results = toy2d.run(smoke(), str(tmp_path))  # runs on the 8 fake devices
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["rows"]) == {"wrong_score", "dg", "exact_correction", "true_score"}
    for row in saved["rows"].values():
        assert {"energy_distance", "nll", "mode_mass_tv"} <= set(row)
    assert (tmp_path / "toy2d.png").stat().st_size > 10_000
    # the oracle correction reproduces the true score's samples (same latents)
    np.testing.assert_allclose(saved["gap_closed_exact"], 1.0, atol=0.02)
    assert results["gap_closed_dg"] == saved["gap_closed_dg"]
    # a second run resumes: generation and training are reused, results identical
    again = toy2d.run(smoke(), str(tmp_path))
    assert again["rows"]["dg"] == results["rows"]["dg"]


@pytest.mark.slow
def test_workdir_with_other_config_is_refused(tmp_path):
    toy2d.run(smoke(), str(tmp_path))
    other = smoke()
    other.disc.width = 32
    with pytest.raises(WorkdirError, match=r"'train'.*other settings.*disc\.width: 64 -> 32"):
        toy2d.run(other, str(tmp_path))


@pytest.mark.slow
def test_sampling_change_redoes_only_evaluation_and_step_counts_are_honoured(tmp_path):
    """A finished workdir: a new DG weight reuses the fakes and the discriminator (files
    untouched) and gives new results; more discriminator steps continue training from the
    checkpoint; fewer steps are refused, naming the field."""
    first = toy2d.run(smoke(), str(tmp_path))
    fake = tmp_path / "fake_samples.npz"
    ckpt = tmp_path / "checkpoints" / "disc"
    stamps = {p: p.stat().st_mtime_ns for p in [fake, *ckpt.rglob("*")] if p.is_file()}
    config = smoke()
    config.dg.weight = 2.0
    second = toy2d.run(config, str(tmp_path))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert second["rows"]["dg"] != first["rows"]["dg"]
    assert second["rows"]["wrong_score"] == first["rows"]["wrong_score"]
    longer = smoke()
    longer.disc.num_steps = 60
    toy2d.run(longer, str(tmp_path))
    steps = [json.loads(line)["step"]
             for line in (tmp_path / "disc" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [20, 40, 60]  # continued from step 40, no row written twice
    shorter = smoke()
    shorter.disc.num_steps = 20
    with pytest.raises(WorkdirError, match=r"disc\.num_steps=20.*disc\.num_steps>=60"):
        toy2d.run(shorter, str(tmp_path))


@pytest.mark.slow
def test_diverging_discriminator_stops_before_results(tmp_path):
    """Learning rate 1e5: the loss can stay finite while the parameters blow up; the run must
    stop in the train stage, name what is not finite, and write no results."""
    config = smoke()
    config.disc.learning_rate = 1e5
    with pytest.raises(NonFiniteError, match=r"\[disc\] non-finite .*no checkpoint was saved"):
        toy2d.run(config, str(tmp_path))
    assert not (tmp_path / "results.json").exists()
    assert not (tmp_path / "checkpoints" / "disc" / "20").exists()


@pytest.mark.parametrize("field,value,match", [
    ("sampler.name", "ddpm", "sampler.name"),
    ("disc.batch_size", 0, "disc.batch_size"),
    ("generate.num_samples", 0, "generate.num_samples"),
    ("disc.learning_rate", -1.0, "disc.learning_rate"),
    ("disc.process", "vq", "unknown process name 'vq'"),
    ("dg.time_max", 1.5, "dg.time_max"),
    ("disc.batch_size", 3, "disc.batch_size"),
    ("eval.batch_size", 100, "eval.batch_size"),
    ("disc.time_sampling", "sobol", "disc.time_sampling"),
])
def test_bad_fields_are_named(tmp_path, field, value, match):
    config = smoke()
    section, name = field.split(".")
    config[section][name] = value
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        toy2d.run(config, str(workdir))
    assert not workdir.exists()  # a run that fails validation writes nothing


def test_mixture_scores_are_exact():
    gmm = GaussianMixture.create([[0.0, 0.0], [2.0, 1.0]], [0.3, 0.5], [0.3, 0.7])
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    # finite differences of log p at sigma = 0.4
    eps = 1e-3
    fd = np.stack([(gmm.log_prob(x + eps * e, 0.4) - gmm.log_prob(x - eps * e, 0.4)) / (2 * eps)
                   for e in np.eye(2)], -1)
    np.testing.assert_allclose(gmm.score(x, 0.4), fd, rtol=2e-2, atol=2e-2)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture.create([[0.0, 0.0]], 1.0, [0.5])


@pytest.mark.slow
def test_main_entry_point_runs_smoke_config(tmp_path):
    cmd = [sys.executable, "-m", "launch.main", "--config=configs/toy2d.py:smoke",
           f"--workdir={tmp_path}", "--config.eval.num_samples=512"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         cwd=pathlib.Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[disc] step 40/40" in out.stdout
    assert (tmp_path / "results.json").exists()
