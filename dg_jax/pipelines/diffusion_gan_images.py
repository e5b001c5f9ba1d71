"""Diffusion-GAN on images: scikit-learn digits (Fréchet distance on the digits classifier's
features) and CIFAR-10 (the paper's Diffusion-StyleGAN2 settings; samples and the adaptive T,
FID is left to dg_jax.eval.fid with the Inception weights).

CIFAR-10 is read from `data.path`: the python-version batches (`cifar-10-batches-py`,
data_batch_1..5) or an .npz with `images` uint8 (N, 32, 32, 3); `data.synthetic=True` (the smoke
variant) uses random smooth images instead, so the code path runs offline.
"""
from __future__ import annotations

import pathlib
import pickle

import jax
import ml_collections
import numpy as np

from dg_jax.checkpoint import write_json
from dg_jax.data.digits import float_to_uint8, load_digits_float
from dg_jax.errors import check_finite, check_finite_array
from dg_jax.eval.digits_classifier import digits_features, train_digits_classifier
from dg_jax.eval.fid import fid_from_features
from dg_jax.gan.trainer import train_gan
from dg_jax.metric_writers import log
from dg_jax.parallel import process_slice
from dg_jax.pipelines.diffusion_gan import generate


def load_cifar10(path: str) -> np.ndarray:
    """uint8 (50000, 32, 32, 3) training images from the python batches or an .npz."""
    p = pathlib.Path(path)
    if p.suffix == ".npz":
        return np.load(p)["images"]
    if not p.is_dir():
        raise FileNotFoundError(f"data.path={path!r}: need cifar-10-batches-py/ or an .npz")
    out = []
    for i in range(1, 6):
        with open(p / f"data_batch_{i}", "rb") as f:
            d = pickle.load(f, encoding="bytes")  # the official CIFAR-10 python format
        out.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.concatenate(out)


def synthetic_images(seed: int, n: int, res: int, channels: int) -> np.ndarray:
    """Random smooth blobs in [-1, 1] (offline stand-in for the smoke variant)."""
    rng = np.random.default_rng(seed)
    u = np.linspace(-1, 1, res)
    yy, xx = np.meshgrid(u, u, indexing="ij")
    c = rng.uniform(-0.6, 0.6, (n, 2, 1, 1))
    blob = np.exp(-((xx - c[:, 0]) ** 2 + (yy - c[:, 1]) ** 2) / 0.1)
    colour = rng.uniform(0.3, 1.0, (n, 1, 1, channels))
    return (2 * blob[..., None] * colour - 1).astype(np.float32)


def load_images(config) -> np.ndarray:
    d = config.data
    if d.synthetic:
        return synthetic_images(config.seed, 512, d.resolution, d.channels)
    if config.experiment == "digits":
        return load_digits_float(d.resolution)[0]
    return load_cifar10(d.path).astype(np.float32) / 127.5 - 1.0


def save_grid(path: pathlib.Path, images: np.ndarray, cols: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = float_to_uint8(images[: cols * cols])
    n, h, w, c = x.shape
    rows = (n + cols - 1) // cols
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(n):
        grid[(i // cols) * h:(i // cols + 1) * h, (i % cols) * w:(i % cols + 1) * w] = x[i]
    plt.imsave(path, grid[..., 0] if c == 1 else grid, cmap="gray" if c == 1 else None)


def run_images(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh, wd) -> dict:
    images = load_images(config)
    shape = images.shape[1:]
    rows = process_slice(config.train.batch_size)
    results = {}
    samples = {}
    for name in config.runs:
        def batch_fn(step):
            rng = np.random.default_rng([config.seed, step])
            return {"real": images[rng.integers(0, len(images), config.train.batch_size)][rows]}

        wd.start(name)
        state, g_apply, _ = train_gan(config, workdir, name, shape, batch_fn, mesh,
                                      enabled=name == "diffusion_gan")
        wd.finish(name)
        samples[name] = generate(g_apply, state.ema_params, jax.random.PRNGKey(config.seed + 99),
                                 config.eval.num_samples, config.model.z_dim, 1000)
        check_finite_array(samples[name], "evaluate", f"{name} generator samples")
        results[name] = {"final_T": int(state.diffusion.T) if name == "diffusion_gan" else 0,
                         "final_p": float(state.diffusion.p)}
    wd.start("evaluate")
    for name in config.runs:
        if jax.process_index() == 0:
            save_grid(workdir / f"samples_{name}.png", samples[name])
    if config.experiment == "digits":
        apply_fn, params, acc = train_digits_classifier(
            config.data.resolution, config.seed, config.eval.classifier_steps)
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
