"""The evaluate stage of the image DG pipelines (dg_images, dit_dg): metrics of the sample sets
without and with DG, results.json and the PNGs."""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax import rng
from dg_jax.checkpoint import write_json
from dg_jax.data import shards
from dg_jax.diffusion.processes import perturb
from dg_jax.errors import ConfigError, check_finite, read_json
from dg_jax.eval.evaluate import (
    FeatureBackend,
    compute_metrics,
    digits_backend,
    fashion_backend,
    inception_backend,
)
from dg_jax.eval.fid import fid_from_features, real_floor
from dg_jax.eval.stats_io import load_stats
from dg_jax.experiments.kit.sample_shards import latents_and_labels
from dg_jax.metric_writers import log, relative_change


def feature_backend(config, workdir: pathlib.Path):
    """The feature network that scores samples: eval.features = 'digits' (a CNN trained on all
    digits), 'fashion_mnist' (the Fashion-MNIST CNN, trained once and cached in
    eval.classifier_cache, default WORKDIR/eval_classifier; eval.classifier_steps steps, 0 =
    its default), 'inception' (pytorch-fid weights at eval.inception_weights: the .pth or its
    launch.convert folder) or 'pixels' (pooled raw pixels; a stand-in for smoke runs, not a
    metric)."""
    e = config.eval
    if e.features == "digits":
        return digits_backend(config.data.resolution, steps=e.classifier_steps)
    if e.features == "fashion_mnist":
        cache = e.get("classifier_cache", "") or workdir / "eval_classifier"
        steps = {"steps": e.classifier_steps} if e.classifier_steps else {}
        return fashion_backend(cache, resolution=config.data.resolution,
                               path=config.data.get("path", ""), **steps)
    if e.features == "inception":
        if not e.inception_weights:
            raise ValueError("eval.features='inception' needs eval.inception_weights=PATH "
                             "(pytorch-fid's pt_inception-2015-12-05 .pth)")
        return inception_backend(e.inception_weights, batch_size=e.batch_size,
                                 field="eval.inception_weights")
    if e.features == "pixels":
        return pixel_backend(config.data.resolution, config.data.channels)
    raise ValueError(f"unknown eval.features {e.features!r}; choose one of {list(FEATURES)}")


FEATURES = ("digits", "fashion_mnist", "inception", "pixels")


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


def validate_shards_and_eval(config, sections, paths=("eval.inception_weights",
                                                      "eval.ref_stats")) -> None:
    """The checks the image pipelines share: each of `sections` (sample, generate) has a
    shard_size that is a multiple of its batch_size; eval.num_samples fits in the samples;
    Inception features come with their weights; the files in `paths` exist."""
    e = config.eval
    for field in sections:
        if config[field].shard_size % config[field].batch_size:
            raise ConfigError(f"{field}.shard_size={config[field].shard_size} must be a multiple "
                              f"of {field}.batch_size={config[field].batch_size}")
    if e.num_samples > config.sample.num_samples:
        raise ConfigError(f"eval.num_samples={e.num_samples} exceeds sample.num_samples="
                          f"{config.sample.num_samples} (the samples written to evaluate)")
    if e.features == "inception" and not e.inception_weights:
        raise ConfigError("eval.features='inception' needs eval.inception_weights=PATH "
                          "(pytorch-fid's pt_inception-2015-12-05 .pth, or its launch.convert "
                          "folder)")
    for field in paths:
        section, name = field.split(".")
        path = config[section].get(name, "")
        if path and not pathlib.Path(path).exists():
            raise ConfigError(f"{field}={path} not found")


def reference_features(backend: FeatureBackend, images, batch_size: int) -> np.ndarray:
    """Features of the reference images (float in [-1, 1] or uint8)."""
    ref_u8 = images if images.dtype == np.uint8 else shards.to_uint8(images)
    log(f"[evaluate] features of {len(ref_u8)} reference images ({backend.name})")
    feats, _ = backend.extract(_batches(ref_u8, batch_size), name="reference", total=len(ref_u8))
    return feats


def fd_against(backend: FeatureBackend, images_u8, ref_feats, batch_size: int) -> float:
    """Fréchet distance of uint8 `images_u8` against reference features."""
    feats, _ = backend.extract(_batches(images_u8, batch_size), name="fd", total=len(images_u8))
    return float(fid_from_features(feats, ref_feats))


DISC_TAUS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def disc_accuracy_by_time(config, disc, disc_params, real, fake, process, n: int = 512,
                          real_labels=None, fake_labels=None):
    """The discriminator's accuracy (real: logit > 0, generated: logit < 0) on `n` images of
    each set diffused to each tau of DISC_TAUS (VP `process`; the same noise per tau), with its
    mean d on both; `real` should be images it did not train on (eval.reference='test'). A
    class-conditional discriminator gets each image's label (`real_labels`, `fake_labels`)."""
    n = min(n, len(real), len(fake))
    x0 = np.concatenate([real[:n], fake[:n]]).astype(np.float32)
    targets = np.concatenate([np.ones(n), np.zeros(n)]) > 0.5
    key = rng.key(config.seed, "eval", "disc_accuracy")
    labels = None
    if real_labels is not None and fake_labels is not None:
        labels = np.concatenate([real_labels[:n], fake_labels[:n]]).astype(np.int32)
    logit = jax.jit(lambda x, tau, y: disc.logit(disc_params, x, tau, y))
    batch = config.eval.batch_size
    rows = []
    for i, tau in enumerate(DISC_TAUS):
        noise = np.asarray(jax.random.normal(jax.random.fold_in(key, i), x0.shape))
        x_t = np.asarray(perturb(process, jnp.asarray(x0), jnp.full((len(x0),), tau),
                                 jnp.asarray(noise)))
        logits = np.concatenate([np.asarray(logit(
            jnp.asarray(x_t[j:j + batch]), jnp.full((len(x_t[j:j + batch]),), tau),
            None if labels is None else jnp.asarray(labels[j:j + batch])))
            for j in range(0, len(x_t), batch)])
        d = 1.0 / (1.0 + np.exp(-logits))
        rows.append({"tau": float(tau), "accuracy": float(np.mean((logits > 0) == targets)),
                     "d_real": float(d[:n].mean()), "d_fake": float(d[n:].mean())})
    return rows


def evaluate(config, workdir: pathlib.Path, reference, precond, score_params, disc, disc_params,
             sampler_factory, process=None) -> dict:
    """Metrics of both sample sets against the reference: the images `reference` (eval.reference:
    the training data or the test split), or the statistics file eval.ref_stats (then FID, and
    IS with Inception, only); the real-vs-real floor; the DG-weight sweep (workdir/sweep), the
    score model's training curve (workdir/score_curve.json) and the discriminator's accuracy by
    diffusion time when they exist."""
    e = config.eval
    backend = feature_backend(config, workdir)
    ref_stats_path = e.get("ref_stats", "")
    if ref_stats_path:
        ref_stats = load_stats(ref_stats_path, dim=backend.width)
        ref_feats = None
        metrics = ("fid", "is") if backend.name == "inception" else ("fid",)
        results = {"reference": f"stats:{ref_stats_path}"}
    else:
        ref_images, _ = reference
        if len(ref_images) < e.num_samples:
            raise ConfigError(f"the reference set has {len(ref_images)} images, fewer than "
                              f"eval.num_samples={e.num_samples} asked for")
        ref_stats = None
        metrics = ("fid", "is", "pr", "kid") if backend.name == "inception" else (
            "fid", "pr", "kid")
        ref_feats = reference_features(backend, ref_images, e.batch_size)
        results = {"reference": e.get("reference", "data"), "reference_size": len(ref_images),
                   "real_floor": real_floor(ref_feats, rng.numpy(config.seed, "eval", "floor"))}
        log(f"[evaluate] real-vs-real floor (two halves of the reference): "
            f"{results['real_floor']:.4f}")
    if backend.info:
        results["eval_network"] = {k: v for k, v in backend.info.items() if k != "settings"}
    sample_sets, sample_labels = {}, {}
    for name in ("no_dg", "dg"):
        images, labels = shards.read_shards(workdir / f"samples_{name.replace('_', '')}")
        if e.num_samples > len(images):
            raise ValueError(f"eval.num_samples={e.num_samples} exceeds the {len(images)} samples "
                             f"in {workdir / ('samples_' + name.replace('_', ''))}")
        images = images[:e.num_samples]
        labels = None if labels is None else labels[:e.num_samples]
        sample_sets[name], sample_labels[name] = images, labels
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
    if ref_feats is not None and (workdir / SWEEP_DIR).is_dir():
        results["dg_weight_sweep"] = [
            {"weight": w, "fd": fd_against(backend, images, ref_feats, e.batch_size)}
            for w, images in read_sweep(config, workdir)]
        log("[evaluate] DG-weight sweep: " + ", ".join(
            f"w={r['weight']:g} fd={r['fd']:.4f}" for r in results["dg_weight_sweep"]))
    if (workdir / CURVE_FILE).is_file():
        results["training_curve"] = read_json(workdir / CURVE_FILE, "training curve")["curve"]
    conditional = bool(config.disc.get("conditional", False))
    if conditional and (reference is None or reference[1] is None
                        or sample_labels["no_dg"] is None):
        log("[evaluate] discriminator accuracy by time skipped: the discriminator is "
            "class-conditional and the reference or the samples have no labels")
    elif process is not None and reference is not None and disc is not None:
        results["disc_accuracy_by_time"] = disc_accuracy_by_time(
            config, disc, disc_params, reference[0], shards.to_float(sample_sets["no_dg"]),
            process, real_labels=reference[1] if conditional else None,
            fake_labels=sample_labels["no_dg"] if conditional else None)
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
        _plots(workdir, sample_sets, results, config)
    return results


# ------------------------------------------------------------- DG-weight sweep, training curve
SWEEP_DIR = "sweep"
CURVE_FILE = "score_curve.json"


def sweep_dir(workdir: pathlib.Path, weight: float) -> pathlib.Path:
    return workdir / SWEEP_DIR / f"w{weight:g}"


def read_sweep(config, workdir: pathlib.Path):
    """[(weight, uint8 images)] of the DG-weight sweep (sweep.weights, sweep.num_samples each):
    weights 0 and dg.weight_1st are the first sweep.num_samples of the main sample sets (the
    same latents), the others their own shard folders."""
    n = config.sweep.num_samples
    out = []
    for w in sorted(set(float(w) for w in config.sweep.weights)):
        if w == 0.0:
            src = workdir / "samples_nodg"
        elif w == float(config.dg.weight_1st):
            src = workdir / "samples_dg"
        else:
            src = sweep_dir(workdir, w)
        images, _ = shards.read_shards(src)
        out.append((w, images[:n]))
    return out


def _plots(workdir, sample_sets, results, config) -> None:
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

    curves = results.get("log_ratio_path")
    if curves is not None:  # eval.path_samples > 0
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

    sweep = results.get("dg_weight_sweep")
    if sweep:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.plot([r["weight"] for r in sweep], [r["fd"] for r in sweep], "o-")
        if "real_floor" in results:
            ax.axhline(results["real_floor"], color="gray", ls="--", lw=0.8,
                       label="real-vs-real floor")
            ax.legend()
        ax.set_xlabel("DG weight (weight_1st)")
        ax.set_ylabel(f"FD ({config.sweep.num_samples} samples)")
        fig.tight_layout()
        fig.savefig(workdir / "fd_vs_dg_weight.png", dpi=100)
        plt.close(fig)

    def log_x_curve(name, x, y, xlabel, ylabel, hline=None):
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.plot(x, y, "o-")
        if hline is not None:
            ax.axhline(hline, color="gray", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.tight_layout()
        fig.savefig(workdir / name, dpi=100)
        plt.close(fig)

    acc = results.get("disc_accuracy_by_time")
    if acc:
        log_x_curve("disc_accuracy.png", [r["tau"] for r in acc], [r["accuracy"] for r in acc],
                    "diffusion time tau (VP)", "discriminator accuracy", hline=0.5)
    curve = results.get("training_curve")
    if curve:
        log_x_curve("training_curve.png", [r["step"] for r in curve], [r["fd"] for r in curve],
                    "score-model training step",
                    f"unguided FD ({curve[0]['num_samples']} samples)")


def _grid(images, side):
    n, h, w, c = images.shape
    grid = np.full((side * (h + 1) + 1, side * (w + 1) + 1, c), 255, np.uint8)
    for i in range(n):
        r, col = divmod(i, side)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + col * (w + 1):1 + col * (w + 1) + w] = images[i]
    return grid
