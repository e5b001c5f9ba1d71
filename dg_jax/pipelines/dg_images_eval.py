"""The evaluate stage of the image DG pipeline: metrics, results.json and the PNGs."""
from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.data import shards
from dg_jax.eval.fid import fid_from_features
from dg_jax.eval.precision_recall import precision_recall
from dg_jax.metric_writers import log


def feature_extractor(config, real_images):
    """features(images uint8) -> (logits, features), and the reference features."""
    e = config.eval
    if e.features == "digits":
        from dg_jax.eval.digits_classifier import digits_features, train_digits_classifier

        apply_fn, params, acc = train_digits_classifier(config.data.resolution, seed=0,
                                                        steps=e.classifier_steps)
        log(f"[evaluate] digits classifier: train accuracy {acc:.3f}")
        return lambda images: digits_features(apply_fn, params, images)
    if e.features == "inception":
        from dg_jax.convert.inception import load_fid_inception
        from dg_jax.eval.features import extract_inception_features

        if not e.inception_weights:
            raise ValueError("eval.features='inception' needs eval.inception_weights=PATH "
                             "(pytorch-fid's pt_inception-2015-12-05 .pth)")
        variables = load_fid_inception(e.inception_weights)

        def extract(images):
            batches = [images[i:i + e.batch_size] for i in range(0, len(images), e.batch_size)]
            pool3, logits = extract_inception_features(variables, batches)
            return logits, pool3

        return extract
    if e.features == "pixels":  # raw pixels: a cheap stand-in for smoke runs, not a metric
        return lambda images: (None, images.reshape(len(images), -1).astype(np.float32) / 255.0)
    raise ValueError(f"unknown eval.features {e.features!r}; choose 'digits', 'inception' or "
                     "'pixels'")


def path_log_ratios(config, sampler_factory, precond, score_params, disc, disc_params, n: int):
    """Mean discriminator log ratio per sampling step, with and without DG (DG's Fig. 7)."""
    from dg_jax.pipelines.dg_images import _latents_and_labels

    lat, lab = _latents_and_labels(config, jax.random.PRNGKey(config.seed + 99), n)
    curves = {}
    for name, weight in (("no_dg", 0.0), ("dg", config.dg.weight_1st)):
        fn = sampler_factory(config, precond, score_params, disc.bind(disc_params), weight)
        _, lr = fn(lat, lab, True)
        lr = np.asarray(lr)
        finite = np.isfinite(lr)  # outside DG's time window the log ratio is +inf: left out
        counts = finite.sum(axis=1)
        sums = np.where(finite, lr, 0.0).sum(axis=1)
        curves[name] = [float(s / c) if c else None for s, c in zip(sums, counts)]
    return curves


def evaluate(config, workdir: pathlib.Path, real, precond, score_params, disc, disc_params,
             sampler_factory) -> dict:
    e = config.eval
    real_images, _ = real
    ref_u8 = shards.to_uint8(real_images)
    if len(ref_u8) < e.num_samples:
        raise ValueError(f"the reference set has {len(ref_u8)} images, fewer than "
                         f"eval.num_samples={e.num_samples} asked for")
    extractor = feature_extractor(config, ref_u8)
    _, ref_feats = extractor(ref_u8)
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
        logits, feats = extractor(images)
        fd = fid_from_features(feats, ref_feats)
        prec, rec = precision_recall(ref_feats, feats, k=3)
        row = {"fd": float(fd), "precision": float(prec), "recall": float(rec)}
        if labels is not None and logits is not None:
            row["accuracy"] = float(np.mean(np.argmax(np.asarray(logits), -1) == labels))
        results[name] = row
        log(f"[evaluate] {name}: " + " ".join(f"{k}={v:.4f}" for k, v in row.items()))
    results["fd_no_dg"], results["fd_dg"] = results["no_dg"]["fd"], results["dg"]["fd"]
    results["fd_reduction"] = 1.0 - results["fd_dg"] / results["fd_no_dg"]
    results["log_ratio_path"] = path_log_ratios(config, sampler_factory, precond, score_params,
                                                disc, disc_params, e.path_samples)
    log(f"[evaluate] fd_no_dg={results['fd_no_dg']:.4f} fd_dg={results['fd_dg']:.4f} "
        f"({100 * results['fd_reduction']:.1f}% lower)")
    if jax.process_index() == 0:
        tmp = workdir / "results.json.tmp"
        tmp.write_text(json.dumps(results, indent=2))
        tmp.replace(workdir / "results.json")
        _plots(workdir, sample_sets, results["log_ratio_path"], config)
    return results


def _plots(workdir, sample_sets, curves, config) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
