"""configs/fashion_dg.py: the image DG pipeline on Fashion-MNIST with a noisy classifier trained
here as the discriminator's feature extractor, the training curve, the DG-weight sweep, the
real-vs-real floor and the discriminator's accuracy by diffusion time (its :smoke variant, on
a 200-image subset of the real files), and the pieces it added."""
import json
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import fashion_dg
from dg_jax.data import shards
from dg_jax.data.images import FASHION_MNIST_DIR
from dg_jax.errors import ConfigError
from dg_jax.experiments.dg_images import models as M
from dg_jax.experiments.dg_images import pipeline as dg_images
from dg_jax.models import edm_layers
from dg_jax.models.adm_flags import classifier_from_flags
from dg_jax.parallel import make_mesh
from dg_jax.train.noisy_classifier import (
    make_vp_noisy_classifier_step,
    vp_noisy_classifier_loss,
)
from dg_jax.train.state import TrainState


def _need_fashion():
    if not pathlib.Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST_DIR} "
                    "(apt-get install -y dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def fashion_smoke(tmp_path_factory):
    _need_fashion()
    workdir = tmp_path_factory.mktemp("fashion_dg_smoke")
    results = dg_images.run(fashion_dg.get_config("smoke"), str(workdir))  # 8 fake devices
    return workdir, results


@pytest.mark.slow
def test_fashion_smoke_writes_every_result_and_plot(fashion_smoke):
    workdir, results = fashion_smoke
    config = fashion_dg.get_config("smoke")
    saved = json.loads((workdir / "results.json").read_text())
    assert saved["fd_no_dg"] == results["fd_no_dg"] and np.isfinite(saved["fd_dg"])
    for name in ("no_dg", "dg"):
        assert {"fd", "precision", "recall", "kid", "accuracy"} <= set(saved[name])
    assert saved["reference"] == "test" and saved["reference_size"] == 10000
    assert 0 < saved["real_floor"] < saved["fd_no_dg"]
    assert 0 < saved["eval_network"]["test_accuracy"] <= 1
    steps = config.score.train.num_steps
    assert [r["step"] for r in saved["training_curve"]] == list(
        range(config.score.train.curve_every, steps + 1, config.score.train.curve_every))
    assert [r["weight"] for r in saved["dg_weight_sweep"]] == sorted(config.sweep.weights)
    assert len(saved["disc_accuracy_by_time"]) == 8
    for png in ("grid.png", "fd_vs_dg_weight.png", "disc_accuracy.png", "training_curve.png"):
        assert (workdir / png).stat().st_size > 1000, png
    # the sweep's own weight uses the main sets' latents and labels (shard 0, same batches)
    n = config.sweep.num_samples
    _, sweep_labels = shards.read_shards(workdir / "sweep" / "w1")
    _, main_labels = shards.read_shards(workdir / "samples_nodg")
    np.testing.assert_array_equal(sweep_labels[:n], main_labels[:n])
    assert (workdir / "checkpoints" / "classifier").is_dir()


@pytest.mark.slow
def test_fashion_smoke_resume_does_nothing_again(fashion_smoke):
    workdir, results = fashion_smoke
    before = {p: p.stat().st_mtime for p in (workdir / "sweep").rglob("*") if p.is_file()}
    again = dg_images.run(fashion_dg.get_config("smoke"), str(workdir))
    assert again["fd_dg"] == results["fd_dg"]
    after = {p: p.stat().st_mtime for p in (workdir / "sweep").rglob("*") if p.is_file()}
    assert before == after


def test_fashion_config_fields_are_checked():
    config = fashion_dg.get_config("smoke")
    config.disc.classifier = "/some/classifier.pt"
    with pytest.raises(ConfigError, match="disc.classifier"):
        dg_images.validate(config, make_mesh())
    config = fashion_dg.get_config("smoke")
    config.sweep.num_samples = 10_000
    with pytest.raises(ConfigError, match="sweep.num_samples"):
        dg_images.validate(config, make_mesh())
    config = fashion_dg.get_config("smoke")
    config.data.source = "digits"
    with pytest.raises(ConfigError, match="eval.reference='test'"):
        dg_images.validate(config, make_mesh())
    config = fashion_dg.get_config("smoke")
    config.disc.classifier_flags.in_channels = 3
    with pytest.raises(ConfigError, match="disc.classifier_flags.in_channels"):
        M.build_dg_classifier(config)


def test_default_fashion_config_trains_its_classifier_and_sweeps():
    config = fashion_dg.get_config()
    assert M.trains_classifier(config)
    names = [s.name for s in dg_images.workdir_stages(config)]
    assert names == ["score", "generate", "classifier", "disc", "sample", "sweep", "evaluate"]
    longer = fashion_dg.get_config("score_steps=4800")
    assert longer.score.train.num_steps == 4800 and longer.score.train.curve_every == 1200


def test_classifier_channel_mult_flag():
    flags = dict(image_size=28, in_channels=1, out_channels=10, classifier_use_fp16=False,
                 classifier_width=32, classifier_depth=1, classifier_attention_resolutions="",
                 classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                 classifier_pool="adaptive")
    with pytest.raises(ValueError, match="unsupported image size 28"):
        classifier_from_flags(flags)  # 28 has no default multipliers
    net = classifier_from_flags({**flags, "classifier_channel_mult": "1,2,2"})
    assert tuple(net.channel_mult) == (1, 2, 2)
    with pytest.raises(ValueError, match="classifier_channel_mult"):
        classifier_from_flags({**flags, "classifier_channel_mult": "1,x"})


@pytest.mark.parametrize("transpose", [False, True])
def test_box_resampling_equals_the_grouped_convolution(transpose):
    """DDPM++'s [1, 1] resampling through reshapes equals torch's grouped (transposed)
    convolution, odd sizes included."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 7, 3))
    f = edm_layers.resample_filter_2d([1, 1]) * (4 if transpose else 1)
    fast = edm_layers._depthwise(x, f, stride=2, padding=0, transpose=transpose)
    w = jnp.tile(jnp.asarray(f[::-1, ::-1] if transpose else f)[:, :, None, None], (1, 1, 1, 3))
    if transpose:
        slow = jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1)] * 2, lhs_dilation=(2, 2),
                                            dimension_numbers=edm_layers._DN,
                                            feature_group_count=3)
    else:
        slow = jax.lax.conv_general_dilated(x, w, (2, 2), [(0, 0)] * 2,
                                            dimension_numbers=edm_layers._DN,
                                            feature_group_count=3)
    assert fast.shape == slow.shape == ((2, 14, 14, 3) if transpose else (2, 3, 3, 3))
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-6)
    # a filter of unequal entries keeps the grouped convolution
    g = edm_layers.resample_filter_2d([1, 3, 3, 1])
    out = edm_layers._depthwise(x, g, stride=2, padding=1, transpose=False)
    assert out.shape == (2, 3, 3, 3)


@pytest.mark.parametrize("jit", [False, True])
def test_vp_noisy_classifier_loss_closed_form(jit):
    """Constant zero logits: cross entropy log(K) whatever tau and noise; logits from the
    clean label alone: loss and accuracy follow exactly."""
    x = jnp.ones((8, 4, 4, 1))
    labels = jnp.arange(8) % 5
    zero = lambda p, x_t, tau, k: jnp.zeros((x_t.shape[0], 5))  # noqa: E731
    fn = jax.jit(vp_noisy_classifier_loss, static_argnums=1) if jit else vp_noisy_classifier_loss
    loss, metrics = fn({}, zero, x, labels, jax.random.PRNGKey(0))
    np.testing.assert_allclose(loss, np.log(5.0), rtol=1e-6)
    onehot = lambda p, x_t, tau, k: 50.0 * jax.nn.one_hot(labels, 5)  # noqa: E731
    loss, metrics = fn({}, onehot, x, labels, jax.random.PRNGKey(0))
    assert float(loss) < 1e-6 and float(metrics["accuracy"]) == 1.0


def test_vp_noisy_classifier_step_learns():
    """A linear classifier on tau-diffused images learns labels carried by the image mean."""
    rng = np.random.default_rng(0)
    labels = jnp.asarray(rng.integers(0, 2, 64))
    x = jnp.asarray(np.where(np.asarray(labels)[:, None, None, None] == 1, 0.8, -0.8)
                    * np.ones((64, 4, 4, 1)), jnp.float32)
    def logits_fn(p, x_t, tau, k):
        chex.assert_shape(tau, (x_t.shape[0],))
        return jnp.mean(x_t, axis=(1, 2, 3))[:, None] * p["w"] + p["b"]

    tx = optax.adam(0.1)
    params = {"w": jnp.zeros((1, 2)), "b": jnp.zeros((2,))}
    state = TrainState.create(params, tx, jax.random.PRNGKey(1))
    step = jax.jit(make_vp_noisy_classifier_step(logits_fn, tx, t_min=0.01))
    first = None
    for _ in range(30):
        state, m = step(state, {"images": x, "labels": labels})
        first = m["loss"] if first is None else first
    assert float(m["loss"]) < float(first) - 0.1
