"""Diffusion-GAN vs a vanilla GAN on limited Fashion-MNIST (configs/fashion_diffusion_gan.py).

For each fixed, seeded, class-balanced training subset in `data.subset_sizes` (drawn by the
'data' stream at `("subset", n)`), both runs of `config.runs` train on the same batches from the
same initial networks (`kit.fit`, resumable, named `<run>_<n>`). Every `eval.curve_every` steps
the EMA generator's FD (`eval.curve_samples` samples) is appended to WORKDIR/<run>_<n>/curve.json
(written whole each time, so a resume keeps it); T, p and r_d = mean(sign(D(real))) over training
come from the run's metrics.jsonl (the train loop's means over each `train.log_every` window).

The evaluation network is the project's Fashion-MNIST CNN (`dg_jax.eval.evaluate.fashion_backend`,
28x28, trained once and cached in `eval.classifier_cache`, default WORKDIR/eval_classifier):
32x32 zero-padded samples are cropped to the centre 28x28 before scoring. FD, precision and
recall (k = 3) are against the 10,000 test images; the real-vs-real floor is the FD between two
disjoint halves of them. Per subset, `memorisation` scores the n training images themselves the
same way: what a generator that reproduced exactly its training subset would get, so a run's FD
far above it means the generator has not come near its data, let alone memorised it.
"""
from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from dg_jax.checkpoint import write_json
from dg_jax.data import images as image_data
from dg_jax.data import shards
from dg_jax.errors import check_finite, check_finite_array
from dg_jax.eval.evaluate import fashion_backend
from dg_jax.eval.fid import fid_from_features, real_floor
from dg_jax.eval.precision_recall import precision_recall
from dg_jax.experiments.diffusion_gan.train import train_gan
from dg_jax.gan.trainer import build_models, generate
from dg_jax.metric_writers import log
from dg_jax.parallel import process_slice

EVAL_RESOLUTION = 28
CURVE_FILE = "curve.json"
NEAREST_SAMPLES = 8


def run_names(config) -> tuple[str, ...]:
    """`<run>_<n>` for every subset size n and run (the training stages, in order)."""
    return tuple(f"{r}_{n}" for n in config.data.subset_sizes for r in config.runs)


def crop_to_eval(images: np.ndarray) -> np.ndarray:
    """The centre 28x28 of (N, 32, 32, C) zero-padded images (28x28 ones pass through)."""
    pad = (images.shape[1] - EVAL_RESOLUTION) // 2
    if images.shape[1:3] not in ((28, 28), (32, 32)):
        raise ValueError(f"Fashion-MNIST images are 28x28 or 32x32 zero-padded, got "
                         f"{images.shape[1:3]}")
    return images[:, pad:images.shape[1] - pad, pad:images.shape[2] - pad] if pad else images


def subset(run, n: int) -> np.ndarray:
    d = run.config.data
    return image_data.load_images("fashion_mnist", path=d.path, resolution=d.resolution,
                                  channels=1, subset_size=n,
                                  rng=run.streams.numpy("data", "subset", n))[0]


class Scorer:
    """Features of the evaluation CNN, and FD / precision / recall against the test set."""

    def __init__(self, config, workdir: pathlib.Path):
        e = config.eval
        cache = e.classifier_cache or workdir / "eval_classifier"
        steps = {"steps": e.classifier_steps} if e.classifier_steps else {}
        self.backend = fashion_backend(cache, resolution=EVAL_RESOLUTION,
                                       path=config.data.path, **steps)
        test = image_data.load_images("fashion_mnist", path=config.data.path, split="test",
                                      resolution=EVAL_RESOLUTION, channels=1)[0]
        self.batch = 1000
        self.ref = self.features(test)
        self.floor = real_floor(self.ref, np.random.default_rng([config.seed, 1]))

    def features(self, images: np.ndarray) -> np.ndarray:
        u8 = shards.to_uint8(crop_to_eval(images))
        feats, _ = self.backend.extract(
            (u8[i:i + self.batch] for i in range(0, len(u8), self.batch)), total=len(u8))
        return feats

    def fd(self, images: np.ndarray) -> float:
        return float(fid_from_features(self.features(images), self.ref))

    def metrics(self, images: np.ndarray) -> dict:
        feats = self.features(images)
        precision, recall = precision_recall(self.ref, feats, k=3)
        return {"fd": float(fid_from_features(feats, self.ref)), "precision": float(precision),
                "recall": float(recall)}


def read_curve(path: pathlib.Path) -> list:
    return json.loads(path.read_text()) if path.is_file() else []


def read_trajectory(path: pathlib.Path) -> dict:
    """{'step', 'T', 'p', 'r_d'} lists from a run's metrics.jsonl (r_d: the window's mean of
    sign(D(real)) in the discriminator's main step)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {"step": [int(r["step"]) for r in rows], "T": [float(r["T"]) for r in rows],
            "p": [float(r["p"]) for r in rows], "r_d": [float(r["sign_real"]) for r in rows]}


def nearest_training(samples: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Index of each sample's nearest training image (pixel L2): the memorisation check."""
    a = samples.reshape(len(samples), -1).astype(np.float64)
    b = train.reshape(len(train), -1).astype(np.float64)
    d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None]
    return np.argmin(d, axis=1)


def run_fashion(run) -> dict:
    """Every (subset, run) GAN, then the evaluation (`run` is a kit.setup.Run)."""
    config, workdir, wd = run.config, run.workdir, run.wd
    e, t = config.eval, config.train
    rows = process_slice(t.batch_size)
    shape = (config.data.resolution, config.data.resolution, 1)
    g_apply = build_models(config.model, shape)[0].apply  # the one train_gan builds
    scorer = Scorer(config, workdir)
    log(f"[eval] Fashion-MNIST CNN test accuracy {scorer.backend.info['test_accuracy']:.4f}; "
        f"real-vs-real floor {scorer.floor:.3f}")
    results = {"real_floor": scorer.floor, "eval_network": scorer.backend.info,
               "d_target": config.diffusion.d_target, "subsets": {}}
    panels = {}
    for n in config.data.subset_sizes:
        train = subset(run, n)
        per = results["subsets"][str(n)] = {}
        # a generator that reproduces exactly its n training images would score this
        mem = per["memorisation"] = scorer.metrics(train)
        log(f"[eval] subset {n} itself against the test set (the memorisation reference): "
            f"fd={mem['fd']:.3f} precision={mem['precision']:.3f} recall={mem['recall']:.3f}")
        for r in config.runs:
            name = f"{r}_{n}"
            curve_path = workdir / name / CURVE_FILE

            def batch_fn(step, _n=n, _train=train):
                rng = run.streams.numpy("data", _n, step)  # the same batches for both runs
                return {"real": _train[rng.integers(0, len(_train), t.batch_size)][rows]}

            def on_segment(state, _path=curve_path, _name=name):
                x = generate(g_apply, state.g.ema_params, run.streams.key("eval", "curve"),
                             e.curve_samples, config.model.z_dim, 1000)
                step = int(jax.device_get(state.step))
                curve = [c for c in read_curve(_path) if c["step"] < step]
                curve.append({"step": step, "fd": scorer.fd(x)})
                log(f"[{_name}] step {step}: fd={curve[-1]['fd']:.3f} ({e.curve_samples} samples)")
                if jax.process_index() == 0:
                    write_json(_path, curve)

            wd.start(name)
            state, _, _ = train_gan(run, name, shape, batch_fn,
                                          enabled=r == "diffusion_gan", on_segment=on_segment,
                                          segment_every=e.curve_every)
            wd.finish(name)
            x = generate(g_apply, state.g.ema_params, run.streams.key("sample"), e.num_samples,
                         config.model.z_dim, 1000)
            check_finite_array(x, "evaluate", f"{name} generator samples")
            m = scorer.metrics(x)
            m.update(final_T=int(state.diffusion.T) if r == "diffusion_gan" else 0,
                     final_p=float(state.diffusion.p), curve=read_curve(curve_path),
                     trajectory=read_trajectory(workdir / name / "metrics.jsonl"))
            quarter = [v for s, v in zip(m["trajectory"]["step"], m["trajectory"]["r_d"])
                       if s > 0.75 * t.num_steps]
            m["r_d_last_quarter"] = float(np.mean(quarter)) if quarter else float("nan")
            per[r] = m
            log(f"[eval] {name}: fd={m['fd']:.3f} precision={m['precision']:.3f} "
                f"recall={m['recall']:.3f} final_T={m['final_T']} "
                f"r_d(last quarter)={m['r_d_last_quarter']:.3f}")
            near = nearest_training(x[:NEAREST_SAMPLES], train)
            panels[name] = (x[:100], x[:NEAREST_SAMPLES], train[near])
        if {"vanilla", "diffusion_gan"} <= set(per):
            per["fd_ratio"] = per["diffusion_gan"]["fd"] / per["vanilla"]["fd"]
            log(f"[eval] subset {n}: Diffusion-GAN / vanilla FD = {per['fd_ratio']:.3f}")
    wd.start("evaluate")
    check_finite(results, "evaluate")
    write_json(workdir / "results.json", results)
    if jax.process_index() == 0:
        from dg_jax.experiments.diffusion_gan.plot import plot_fashion  # noqa: PLC0415

        plot_fashion(workdir, results, panels, config)
    log(f"[done] wrote {workdir / 'results.json'} and the PNGs")
    wd.finish("evaluate")
    return results
