"""The evaluate stage of the image DG pipeline: metrics, results.json and the PNGs."""
from __future__ import annotations

import pathlib

import jax
import numpy as np

from dg_jax import rng
from dg_jax.checkpoint import write_json
from dg_jax.data import shards
from dg_jax.errors import ConfigError, check_finite
from dg_jax.eval.evaluate import FeatureBackend, compute_metrics, digits_backend, inception_backend
from dg_jax.eval.stats_io import load_stats
from dg_jax.experiments.kit.sample_shards import latents_and_labels
from dg_jax.metric_writers import log, relative_change


def feature_backend(config):
    """The feature network that scores samples: eval.features = 'digits' (a CNN trained on all
    digits), 'inception' (pytorch-fid weights at eval.inception_weights: the .pth or its
    launch.convert folder) or 'pixels' (pooled raw pixels; a stand-in for smoke runs, not a
    metric)."""
    e = config.eval
    if e.features == "digits":
        return digits_backend(config.data.resolution, steps=e.classifier_steps)
    if e.features == "inception":
        if not e.inception_weights:
            raise ValueError("eval.features='inception' needs eval.inception_weights=PATH "
                             "(pytorch-fid's pt_inception-2015-12-05 .pth)")
        return inception_backend(e.inception_weights, batch_size=e.batch_size,
                                 field="eval.inception_weights")
    if e.features == "pixels":
        return pixel_backend(config.data.resolution, config.data.channels)
    raise ValueError(f"unknown eval.features {e.features!r}; choose 'digits', 'inception' or "
                     "'pixels'")


PIXEL_GRID = 8


def pixel_backend(resolution: int, channels: int):
    """Raw pixels in [0, 1], average-pooled to at most 8x8 per channel: a cheap stand-in for
    smoke runs and tests (their Fréchet distance needs no network), not a metric."""
    factor = max(1, resolution // PIXEL_GRID)
    side = resolution // factor

    def extract(batches, name="pixels", total=None):
        del name, total
        feats = []
        for b in batches:
            x = np.asarray(b, np.float32) / 255.0
            x = x[:, :side * factor, :side * factor]
            x = x.reshape(len(x), side, factor, side, factor, x.shape[-1]).mean(axis=(2, 4))
            feats.append(x.reshape(len(x), -1))
        return np.concatenate(feats), None

    return FeatureBackend("pixels", side * side * channels, extract)


def _batches(images, size):
    return [images[i:i + size] for i in range(0, len(images), size)]


def path_log_ratios(config, sampler_factory, precond, score_params, disc, disc_params, n: int):
    """Mean discriminator log ratio per sampling step, with and without DG (DG's Fig. 7)."""
    lat, lab, noise_key = latents_and_labels(config, rng.key(config.seed, "eval", "log_ratio"), n)
    curves = {}
    for name, weight in (("no_dg", 0.0), ("dg", config.dg.weight_1st)):
        fn = sampler_factory(config, precond, score_params, disc.bind(disc_params), weight)
        _, lr = fn(lat, lab, noise_key, True)
        lr = np.asarray(lr)
        finite = np.isfinite(lr)  # outside DG's time window the log ratio is +inf: left out
        counts = finite.sum(axis=1)
        sums = np.where(finite, lr, 0.0).sum(axis=1)
        curves[name] = [float(s / c) if c else None for s, c in zip(sums, counts)]
    return curves


def evaluate(config, workdir: pathlib.Path, real, precond, score_params, disc, disc_params,
             sampler_factory) -> dict:
    """Metrics of both sample sets against the reference: the real data (`real`), or the
    statistics file eval.ref_stats (then FID, and IS with Inception, only)."""
    e = config.eval
    backend = feature_backend(config)
    ref_stats_path = e.get("ref_stats", "")
    if ref_stats_path:
        ref_stats = load_stats(ref_stats_path, dim=backend.width)
        ref_feats = None
        metrics = ("fid", "is") if backend.name == "inception" else ("fid",)
        results = {"reference": f"stats:{ref_stats_path}"}
    else:
        real_images, _ = real
        ref_u8 = shards.to_uint8(real_images)
        if len(ref_u8) < e.num_samples:
            raise ConfigError(f"the reference set has {len(ref_u8)} images, fewer than "
                              f"eval.num_samples={e.num_samples} asked for")
        ref_stats = None
        metrics = ("fid", "is", "pr", "kid") if backend.name == "inception" else ("fid", "pr")
        log(f"[evaluate] features of {len(ref_u8)} reference images ({backend.name})")
        ref_feats, _ = backend.extract(_batches(ref_u8, e.batch_size), name="reference",
                                       total=len(ref_u8))
        results = {"reference_size": int(len(ref_u8))}
    sample_sets = {}
    for name in ("no_dg", "dg"):
        images, labels = shards.read_shards(workdir / f"samples_{name.replace('_', '')}")
        if e.num_samples > len(images):
            raise ValueError(f"eval.num_samples={e.num_samples} exceeds the {len(images)} samples "
                             f"in {workdir / ('samples_' + name.replace('_', ''))}")
        images = images[:e.num_samples]
        labels = None if labels is None else labels[:e.num_samples]
        sample_sets[name] = images
        feats, logits = backend.extract(_batches(images, e.batch_size), name=f"features {name}",
                                        total=len(images))
        row = compute_metrics(feats, logits, metrics, ref_features=ref_feats, ref_stats=ref_stats,
                              kid_subset_size=min(1000, len(feats)))
        row["fd"] = row.pop("fid")
        if labels is not None and logits is not None:
            row["accuracy"] = float(np.mean(np.argmax(np.asarray(logits), -1) == labels))
        results[name] = row
        log(f"[evaluate] {name}: " + " ".join(f"{k}={v:.4f}" for k, v in row.items()))
    results["fd_no_dg"], results["fd_dg"] = results["no_dg"]["fd"], results["dg"]["fd"]
    results["fd_reduction"] = 1.0 - results["fd_dg"] / results["fd_no_dg"]
    if e.path_samples:
        log(f"[evaluate] mean log ratio along the sampling path ({e.path_samples} samples, two "
            "samplers to compile)")
        results["log_ratio_path"] = path_log_ratios(config, sampler_factory, precond,
                                                    score_params, disc, disc_params,
                                                    e.path_samples)
    check_finite(results, "evaluate")
    log(f"[evaluate] fd_no_dg={results['fd_no_dg']:.4f} fd_dg={results['fd_dg']:.4f} "
        f"({relative_change(results['fd_no_dg'], results['fd_dg'])} with DG)")
    write_json(workdir / "results.json", results)
    if jax.process_index() == 0:
        _plots(workdir, sample_sets, results.get("log_ratio_path"), config)
    return results


def _plots(workdir, sample_sets, curves, config) -> None:
    import matplotlib  # noqa: PLC0415  (matplotlib only when plotting)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415  (matplotlib only when plotting)

    n = min(64, *(len(v) for v in sample_sets.values()))
    side = int(np.sqrt(n))
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4))
    for ax, (name, images) in zip(axes, sample_sets.items()):
        grid = _grid(images[:side * side], side)
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
        ax.set_title("without DG" if name == "no_dg" else "with DG (same latents)")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(workdir / "grid.png", dpi=100)
    plt.close(fig)

    if curves is None:  # eval.path_samples = 0
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(range(len(curve)), [np.nan if v is None else v for v in curve],
                label="with DG" if name == "dg" else "without DG")
    ax.set_xlabel("sampling step (high noise -> low noise)")
    ax.set_ylabel("mean log(d / (1 - d))")
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(workdir / "log_ratio.png", dpi=100)
    plt.close(fig)


def _grid(images, side):
    n, h, w, c = images.shape
    grid = np.full((side * (h + 1) + 1, side * (w + 1) + 1, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, side)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + col * (w + 1):1 + col * (w + 1) + w] = images[i]
    return grid
