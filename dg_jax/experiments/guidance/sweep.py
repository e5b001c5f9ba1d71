"""The guidance-weight sweeps of configs/digits_guidance.py: classifier guidance (CG) and
classifier-free guidance (CFG) from one class-conditional model trained with label dropout.

- CFG at weight w: eps = (1 + w) eps(x, y) - w eps(x, null) (w = 0: the conditional model).
- CG at weight w (sweep.cg_base='unconditional', the default): the model's unconditional branch
  (null label) plus w * grad log p_phi(y | x_t) of the noisy classifier, as a mean shift for
  DDPM (an eps shift for DDIM); w = 0 is the unconditional model. 'conditional' guides the
  conditional branch instead, as ADM does with its conditional models (ADM-G; w = 0 is then
  the conditional model, the same samples as CFG at w = 0).
- DDIM respaces the process by sweep.ddim_respacing when set ("ddimN", as guided-diffusion's
  DDIM scripts), DDPM by sweep.respacing.
Every weight samples from the same latents and the same balanced labels. Samples are quantised
to uint8 and scored by a digits classifier trained with a different seed from everything else:
accuracy = how often it recognises the requested class; fd = Fréchet distance of its features
against all real digits.
"""
from __future__ import annotations

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.data.digits import float_to_uint8, load_digits_uint8
from dg_jax.data.images import load_images
from dg_jax.eval.evaluate import FeatureBackend, digits_backend, fashion_backend
from dg_jax.eval.fid import fid_from_features
from dg_jax.eval.precision_recall import precision_recall
from dg_jax.experiments.guidance import models as GM
from dg_jax.guidance.cfg import cfg_model_fn, classifier_guidance_cond_fn, null_labels_like
from dg_jax.guidance.discriminator import dg_cond_fn
from dg_jax.metric_writers import Progress, log
from dg_jax.parallel import data_sharding, gather, put_global
from dg_jax.samplers.ddpm import ddim_sample, ddpm_sample

SAMPLERS = ("ddpm", "ddim")
CG_BASES = ("unconditional", "conditional")


def make_guided_sampler(config, unet, params, clf, clf_params, method: str,
                        sampler: str | None = None, dg: dict | None = None):
    """jit(latents, labels, rng, weight) -> samples for method 'cg', 'cfg' or 'cfg_dg' (weight
    traced, so one compilation serves the whole sweep), with `sampler` 'ddpm' (CG / DG: a mean
    shift) or 'ddim' (an eps shift); default sweep.sampler. 'cfg_dg' is CFG at
    dg['cfg_weight'] plus DG's cond_fn of dg['logit'](x_t, tau, y) at `weight`."""
    sw, d = config.sweep, config.data
    sampler = sw.sampler if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r} (sweep.sampler / sweep.cg_samplers); "
                         f"choose one of {list(SAMPLERS)}")
    if sw.cg_base not in CG_BASES:
        raise ValueError(f"unknown sweep.cg_base {sw.cg_base!r}; choose one of {list(CG_BASES)}")
    diffusion = sampler_diffusion(config, sampler)
    null = d.num_classes

    def model_fn(x, t, y):
        return unet.apply({"params": params}, x, t, y)

    def run(latents, labels, rng, weight):
        if method == "cfg":
            fn = cfg_model_fn(model_fn, weight, null, learned_variance=diffusion.learns_variance)
            cond_fn = None
        elif method == "cfg_dg":
            fn = cfg_model_fn(model_fn, dg["cfg_weight"], null,
                              learned_variance=diffusion.learns_variance)
            cond_fn = dg_cond_fn(dg["logit"], weight)
        elif method == "cg":
            if sw.cg_base == "unconditional":
                fn = lambda x, t, y: model_fn(x, t, null_labels_like(y, null))  # noqa: E731
            else:
                fn = model_fn
            cond_fn = classifier_guidance_cond_fn(
                lambda x, t: clf.apply({"params": clf_params}, x, t), weight)
        else:
            raise ValueError(f"unknown guidance method {method!r}")
        if sampler == "ddpm":
            return ddpm_sample(diffusion, fn, latents, y=labels, rng=rng, cond_fn=cond_fn)
        return ddim_sample(diffusion, fn, latents, y=labels, cond_fn=cond_fn)

    return jax.jit(run)


def sampler_respacing(config, sampler: str) -> tuple[str, str]:
    """(field, respacing) of `sampler`: sweep.ddim_respacing for 'ddim' when set
    (guided-diffusion's DDIM runs use "ddimN", whose steps start at t = 0 with a fixed stride
    and so never visit t = T - 1), else sweep.respacing."""
    sw = config.sweep
    if sampler == "ddim" and sw.get("ddim_respacing", ""):
        return "sweep.ddim_respacing", sw.ddim_respacing
    return "sweep.respacing", sw.respacing


def sampler_diffusion(config, sampler: str):
    """The score model's process respaced for `sampler` (`sampler_respacing`)."""
    field, respacing = sampler_respacing(config, sampler)
    try:
        return GM.make_diffusion(config.score.flags, respacing=respacing)
    except ValueError as e:
        raise ValueError(f"{field}={respacing!r} does not respace the score model's "
                         f"{config.score.flags.diffusion_steps} steps: {e}") from e


def sample_set(run, sampler, weight: float, key, labels_all, image_shape, batch_size: int,
               name: str) -> np.ndarray:
    """uint8 samples of `sampler` at `weight`, one per label: batch i from latents
    normal(fold_in(fold_in(key, i), 0)) and noise fold_in(fold_in(key, i), 1), the same at every
    weight and on any number of devices."""
    sharding = data_sharding(run.mesh)
    n, b = len(labels_all), batch_size
    progress = Progress(name, n) if n > b else None  # a line a batch when there are several
    chunks = []
    for i in range(0, n, b):
        k = jax.random.fold_in(key, i)
        # every process draws the same global batch and places its own rows
        latents = put_global(jax.random.normal(jax.random.fold_in(k, 0), (b,) + image_shape),
                             sharding)
        lab = np.zeros(b, np.int32)
        lab[:min(b, n - i)] = labels_all[i:i + b]
        x = sampler(latents, put_global(lab, sharding), jax.random.fold_in(k, 1),
                    jnp.float32(weight))
        chunks.append(gather(x))
        if progress is not None:
            progress.update(min(b, n - i))
    return float_to_uint8(np.concatenate(chunks)[:n])


def sweep_rows(run, sampler, weights, backend, real_feats, image_shape, key_name: str,
               stage: str = "sweep"):
    """[{"weight", "accuracy", "fd", "precision", "recall"}] over `weights` (ascending) from the
    sweep's latents and balanced labels (stream 'sample/sweep', sweep.num_samples), and
    {(key_name, weight): the first two samples per class}."""
    sw, d = run.config.sweep, run.config.data
    key = run.streams.key("sample", "sweep")
    labels_all = np.arange(sw.num_samples, dtype=np.int32) % d.num_classes
    rows, grids = [], {}
    for w in sorted(float(x) for x in weights):
        t1 = time.perf_counter()
        samples = sample_set(run, sampler, w, key, labels_all, image_shape, sw.batch_size,
                             f"{key_name} w={w:g}")
        row = {"weight": w, **score_samples(backend, samples, labels_all, real_feats)}
        rows.append(row)
        grids[(key_name, w)] = samples[:2 * d.num_classes]
        log(f"[{stage}] {key_name} w={w:g}: accuracy={row['accuracy']:.4f} "
            f"fd={row['fd']:.4f} precision={row['precision']:.4f} "
            f"recall={row['recall']:.4f} ({time.perf_counter() - t1:.1f}s)")
    return rows, grids


def scorer_backend(config, workdir) -> tuple[FeatureBackend, np.ndarray]:
    """(scoring network, reference features): sweep.scorer 'digits' (the digits CNN trained
    with sweep.scorer_seed for sweep.scorer_steps; reference all 1,797 digits) or
    'fashion_mnist' (the Fashion-MNIST evaluation CNN, the same seed and steps, cached in
    sweep.scorer_cache, default WORKDIR/eval_classifier; reference the 10,000 test images)."""
    sw, d = config.sweep, config.data
    scorer = sw.get("scorer", "digits")
    if scorer == "digits":
        backend = digits_backend(d.resolution, steps=sw.scorer_steps, seed=sw.scorer_seed)
        real_u8, _ = load_digits_uint8(d.resolution)
    elif scorer == "fashion_mnist":
        cache = sw.get("scorer_cache", "") or pathlib.Path(workdir) / "eval_classifier"
        backend = fashion_backend(cache, resolution=d.resolution, steps=sw.scorer_steps,
                                  seed=sw.scorer_seed, path=d.get("path", ""))
        test, _ = load_images("fashion_mnist", path=d.get("path", ""), resolution=d.resolution,
                              channels=1, split="test")
        real_u8 = float_to_uint8(test)
    else:
        raise ValueError(f"unknown sweep.scorer {scorer!r}; choose one of {list(SCORERS)}")
    feats, _ = backend.extract([real_u8], name="reference", total=len(real_u8))
    return backend, feats


SCORERS = ("digits", "fashion_mnist")


def score_samples(backend: FeatureBackend, samples_u8, labels, real_feats) -> dict:
    """accuracy (the scorer recognises the requested class), fd, precision, recall."""
    feats, logits = backend.extract([samples_u8], name="samples", total=len(samples_u8))
    row = {"accuracy": float(np.mean(np.argmax(logits, -1) == labels)),
           "fd": fid_from_features(feats, real_feats)}
    row["precision"], row["recall"] = precision_recall(real_feats, feats)
    return row


def sweep_methods(config) -> list[tuple[str, str, str]]:
    """[(results key, guidance, sampler)]: CG with each of sweep.cg_samplers (key 'cg' for
    sweep.sampler, 'cg_<sampler>' for another), then CFG with sweep.sampler."""
    sw = config.sweep
    cg = [("cg" if s == sw.sampler else f"cg_{s}", "cg", s)
          for s in sw.get("cg_samplers", [sw.sampler])]
    return cg + [("cfg", "cfg", sw.sampler)]


def scorer(run) -> tuple[FeatureBackend, np.ndarray, dict]:
    """(scoring network, reference features, {"scorer_test_accuracy" or
    "scorer_train_accuracy": its accuracy}) of sweep.scorer, with a log line."""
    sw = run.config.sweep
    t0 = time.perf_counter()
    backend, real_feats = scorer_backend(run.config, run.workdir)
    acc = backend.info.get("test_accuracy", backend.info.get("train_accuracy"))
    log(f"[sweep] scoring classifier ({backend.name}, seed {sw.scorer_seed}): accuracy "
        f"{acc:.4f} ({time.perf_counter() - t0:.1f}s)")
    split = "test" if "test_accuracy" in backend.info else "train"
    return backend, real_feats, {f"scorer_{split}_accuracy": acc}


def sweep_stage(run, unet, params, clf, clf_params, real_images, backend, real_feats) -> dict:
    """The CG and CFG rows of every method of `sweep_methods` and WORKDIR/guidance.png."""
    config, workdir = run.config, run.workdir
    sw, d = config.sweep, config.data
    results, grids = {}, {}
    for key_name, method, sampler_name in sweep_methods(config):
        weights = sw.cg_weights if method == "cg" else sw.cfg_weights
        sampler = make_guided_sampler(config, unet, params, clf, clf_params, method,
                                      sampler_name)
        results[key_name], g = sweep_rows(run, sampler, weights, backend, real_feats,
                                          real_images.shape[1:], key_name)
        grids.update(g)
    if jax.process_index() == 0:
        # matplotlib only when plotting (plot.py imports it)
        from dg_jax.experiments.guidance.plot import plot_tradeoff  # noqa: PLC0415

        path = pathlib.Path(workdir) / "guidance.png"
        plot_tradeoff(path, results, grids, d.num_classes,
                      title=f"CG on the {sw.cg_base} branch; respacing {sw.respacing!r} "
                            f"(DDIM {sampler_respacing(config, 'ddim')[1]!r})")
        log(f"[sweep] wrote {path}")
    return results
