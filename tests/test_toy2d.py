"""The 2-D DG pipeline end to end (smoke size) and its input errors."""
import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import toy2d as toy_config
from dg_jax.pipelines import toy2d
from dg_jax.toy.gmm import GaussianMixture


def smoke():
    return toy_config.get_config("smoke")


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


def test_workdir_with_other_config_is_refused(tmp_path):
    toy2d.run(smoke(), str(tmp_path))
    other = smoke()
    other.disc.width = 32
    with pytest.raises(ValueError, match=r"different config.*disc\.width: 64 -> 32"):
        toy2d.run(other, str(tmp_path))


@pytest.mark.parametrize("field,value,match", [
    ("sampler.name", "ddpm", "sampler.name"),
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
    with pytest.raises(ValueError, match=match):
        toy2d.run(config, str(tmp_path))


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


def test_main_entry_point_runs_smoke_config(tmp_path):
    cmd = [sys.executable, "-m", "launch.main", "--config=configs/toy2d.py:smoke",
           f"--workdir={tmp_path}", "--config.eval.num_samples=512"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         cwd=pathlib.Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "[train] step 40/40" in out.stdout
    assert (tmp_path / "results.json").exists()
