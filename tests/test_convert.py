"""launch.convert: official checkpoints -> orbax + arch.json -> the same outputs."""
import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.convert.saved import convert_checkpoint, load_converted, save_converted
from dg_jax.convert.torch_reader import CheckpointError

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _case(root, kind):
    return next(c for c in json.loads((root / "manifest.json").read_text())["cases"]
                if c["kind"] == kind)


def test_edm_pickle_round_trip(shared_fixtures, tmp_path):
    root = shared_fixtures / "parity"
    case = _case(root, "edm_denoiser")
    out = tmp_path / "edm"
    cmd = [sys.executable, "-m", "launch.convert", "--kind=edm",
           f"--checkpoint={root / case['checkpoint']}", f"--output={out}"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = load_converted(out)
    io = np.load(root / case["io"])
    x = jnp.asarray(io["x"].transpose(0, 2, 3, 1))
    labels = io["class_labels"] if io["class_labels"].size else None
    d = loaded.model(loaded.params, x, jnp.asarray(io["sigma"]), labels)
    np.testing.assert_allclose(np.asarray(d).transpose(0, 3, 1, 2), io["denoised"],
                               rtol=case["rtol"], atol=case["atol"])


def test_dg_discriminator_round_trip(shared_fixtures, tmp_path):
    root = shared_fixtures / "parity"
    case = _case(root, "dg_discriminator")
    conv = convert_checkpoint("dg_discriminator", {"classifier": root / case["classifier"],
                                                   "checkpoint": root / case["checkpoint"]},
                              case["classifier_arch"], case["arch"])
    save_converted(conv, tmp_path / "disc")
    loaded = load_converted(tmp_path / "disc")
    io = np.load(root / case["io"])
    x = jnp.asarray(io["x"].transpose(0, 2, 3, 1))
    d = loaded.model.prob(loaded.params, x, jnp.asarray(io["t"]))
    np.testing.assert_allclose(d, io["d"], rtol=case["rtol"], atol=case["atol"])
    with pytest.raises(FileExistsError):
        save_converted(conv, tmp_path / "disc")


def test_convert_errors(tmp_path):
    with pytest.raises(ValueError, match="--kind"):
        convert_checkpoint("sdxl", {"checkpoint": "x"})
    with pytest.raises(ValueError, match="--flags"):
        convert_checkpoint("adm_unet", {"checkpoint": "x"})
    with pytest.raises(CheckpointError, match="no arch.json"):
        load_converted(tmp_path)
