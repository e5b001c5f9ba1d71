"""Diffusion-GAN on images: scikit-learn digits (Fréchet distance on the digits classifier's
features) and CIFAR-10 (the paper's Diffusion-StyleGAN2 settings; samples and the adaptive T,
FID is left to dg_jax.eval.fid with the Inception weights).

CIFAR-10 is read from `data.path`: the python-version batches (`cifar-10-batches-py`,
data_batch_1..5) or an .npz with `images` uint8 (N, 32, 32, 3); `data.synthetic=True` (the smoke
variant) uses random smooth images instead, so the code path runs offline.
"""
from __future__ import annotations

import pathlib

import jax
import numpy as np

from dg_jax.checkpoint import write_json
from dg_jax.data import images as image_data
from dg_jax.data.digits import float_to_uint8
from dg_jax.errors import check_finite, check_finite_array
from dg_jax.eval.digits_classifier import digits_features, train_digits_classifier
from dg_jax.eval.fid import fid_from_features
from dg_jax.experiments.diffusion_gan.train import train_gan
from dg_jax.gan.trainer import generate
from dg_jax.metric_writers import log
from dg_jax.parallel import process_slice


def load_images(run) -> np.ndarray:
    """The experiment's training images in [-1, 1] (`dg_jax.data.images`): the digits, CIFAR-10
    from data.path, or with data.synthetic the smooth blobs of the run's 'data' stream."""
    config = run.config
    d = config.data
    if d.synthetic:
        source, rng = "synthetic", run.streams.numpy("data", "synthetic")
    else:
        source, rng = ("digits" if config.experiment == "digits" else "cifar10"), None
    return image_data.load_images(source, path=d.path, resolution=d.resolution,
                                  channels=d.channels, rng=rng)[0]


def save_grid(path: pathlib.Path, images: np.ndarray, cols: int = 10) -> None:
    import matplotlib  # noqa: PLC0415  (matplotlib only when plotting)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  (matplotlib only when plotting)

    x = float_to_uint8(images[: cols * cols])
    n, h, w, c = x.shape
    rows = (n + cols - 1) // cols
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(n):
        grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = x[i]
    plt.imsave(path, grid[..., 0] if c == 1 else grid, cmap="gray" if c == 1 else None)


def run_images(run) -> dict:
    """Both GANs on the experiment's images (`run` is a kit.setup.Run), then the evaluation."""
    config, workdir, wd = run.config, run.workdir, run.wd
    images = load_images(run)
    shape = images.shape[1:]
    rows = process_slice(config.train.batch_size)
    results = {}
    samples = {}
    for name in config.runs:
        def batch_fn(step):
            rng = run.streams.numpy("data", step)  # the same batches for both runs
            return {"real": images[rng.integers(0, len(images), config.train.batch_size)][rows]}

        wd.start(name)
        state, g_apply, _ = train_gan(run, name, shape, batch_fn, enabled=name == "diffusion_gan")
        wd.finish(name)
        samples[name] = generate(g_apply, state.g.ema_params, run.streams.key("sample"),
                                 config.eval.num_samples, config.model.z_dim, 1000)
        check_finite_array(samples[name], "evaluate", f"{name} generator samples")
        results[name] = {"final_T": int(state.diffusion.T) if name == "diffusion_gan" else 0,
                         "final_p": float(state.diffusion.p)}
    wd.start("evaluate")
    for name in config.runs:
        if jax.process_index() == 0:
            save_grid(workdir / f"samples_{name}.png", samples[name])
    if config.experiment == "digits":
        # the evaluation network is the same for every seed (dg_jax.eval.digits_classifier)
        apply_fn, params, acc = train_digits_classifier(config.data.resolution,
                                                        steps=config.eval.classifier_steps)
        log(f"[eval] digits classifier train accuracy {acc:.4f}")
        real = digits_features(apply_fn, params, images)[1]
        results["classifier_accuracy"] = acc
        for name in config.runs:
            fd = fid_from_features(digits_features(apply_fn, params, samples[name])[1], real)
            results[f"fd_{name}"] = fd
            log(f"[eval] {name}: fd={fd:.4f} final_T={results[name]['final_T']}")
    check_finite(results, "evaluate")
    write_json(workdir / "results.json", results)
    log(f"[done] wrote {workdir / 'results.json'}")
    wd.finish("evaluate")
    return results
