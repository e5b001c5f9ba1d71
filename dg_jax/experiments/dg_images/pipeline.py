"""Discriminator Guidance on images, end to end (configs/digits_dg.py, cifar10_edm_dg.py, ...).

Stages (each resumable from the workdir; `config.stages` picks a subset):
  score     train an EDM score model with EDM's loss (data.source digits/npz), or load one
            converted by `launch.convert` (score.source='converted'), or a random tiny one
            (score.source='random', smoke tests);
  generate  N samples of the score model with EDM's Heun sampler -> workdir/fake/ shards;
  classifier  (disc.kind='adm' with disc.classifier_train.num_steps > 0) the noisy classifier
            DG's discriminator is built on, trained on VP-diffused labelled real images ->
            workdir/checkpoints/classifier;
  disc      DG's discriminator on VP-diffused real vs generated images (a small conv net, or the
            frozen ADM classifier + trainable head as in DG) -> workdir/checkpoints/disc;
  sample    the same latents and labels with and without DG (EDM-G++) -> samples_nodg/, samples_dg/;
  sweep     (sweep.weights) the same latents at other DG weights -> sweep/w<weight>/;
  evaluate  Fréchet distance, precision/recall, KID and class accuracy on a feature extractor
            (the digits or Fashion-MNIST classifier, or Inception) with the real-vs-real floor,
            the DG-weight sweep, the discriminator's accuracy by diffusion time, the mean log
            ratio along the sampling path (DG's Fig. 7): results.json, grid.png, log_ratio.png,
            fd_vs_dg_weight.png, disc_accuracy.png, training_curve.png.
With score.train.curve_every > 0 the score stage also records the unguided FD of
score.train.curve_samples samples every curve_every steps (score_curve.json): the training
curve that shows how far the baseline is from converged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dg_jax.checkpoint import write_json
from dg_jax.convert.saved import load_weights
from dg_jax.data import shards
from dg_jax.diffusion.processes import VP
from dg_jax.errors import ConfigError, read_json
from dg_jax.experiments.dg_images import models as M
from dg_jax.experiments.dg_images.adm import build_adm_score, make_adm_sampler
from dg_jax.experiments.dg_images.classifier import classifier_stage
from dg_jax.experiments.kit.image_eval import (
    CURVE_FILE,
    FEATURES,
    SWEEP_DIR,
    evaluate,
    fd_against,
    feature_backend,
    reference_features,
    sweep_dir,
    validate_shards_and_eval,
)
from dg_jax.experiments.kit.sample_shards import latents_and_labels, write_sample_shards
from dg_jax.experiments.kit.setup import Run, setup_run
from dg_jax.guidance.discriminator import dg_correction_fn, validate_window
from dg_jax.metric_writers import log
from dg_jax.parallel import check_divisible, process_slice
from dg_jax.samplers.edm import denoiser_sigma_steps
from dg_jax.samplers.edm_gpp import make_edm_gpp_sampler
from dg_jax.train.discriminator import TIME_SAMPLINGS, make_train_step
from dg_jax.train.edm_loss import make_edm_train_step
from dg_jax.train.precomputed_features import make_head_train_step, precompute_features
from dg_jax.train.state import TrainState, make_optimizer
from dg_jax.validate import check_choice, check_positive
from dg_jax.workdir import Stage

STAGES = ("score", "generate", "classifier", "disc", "sample", "sweep", "evaluate")
# fields that may change between runs of one workdir without redoing anything
RESUME_SAFE = ("stages", "tensorboard", "score.train.log_every", "score.train.checkpoint_every",
               "disc.log_every", "disc.checkpoint_every", "disc.classifier_train.log_every",
               "disc.classifier_train.checkpoint_every", "eval.batch_size")
SAMPLING_NUMERICS = ("score.compute_dtype", "score.attention_impl", "disc.compute_dtype",
                     "disc.attention_impl")
DG_PROCESS = VP(0.1, 20.0)
DISC_SOURCES = ("train", "converted")


def workdir_stages(config) -> tuple[Stage, ...]:
    """The stages of this config and the fields each depends on (see dg_jax.workdir). With a
    pretrained discriminator (disc.source='converted') there is no generate stage."""
    trains_score = config.score.source == "train"
    trains_disc = config.disc.source == "train"
    score_fields = ("seed", "data", "score") if trains_score else (
        "score.family", "score.source", "score.checkpoint", "score.arch", "score.flags",
        "data.resolution", "data.channels", "data.num_classes")
    score = Stage("score", fields=score_fields, outputs=("checkpoints/score", CURVE_FILE),
                  trains="score.train.num_steps" if trains_score else None)
    out = [score]
    if trains_disc:
        out.append(Stage("generate", fields=("seed", "generate"),
                         provenance=("sampler",) + SAMPLING_NUMERICS, after=("score",),
                         outputs=("fake",)))
        disc_after = ("generate",)
        if M.trains_classifier(config):
            out.append(Stage("classifier", fields=("seed", "data", "disc.classifier_flags",
                                                   "disc.classifier_train"),
                             trains="disc.classifier_train.num_steps",
                             outputs=("checkpoints/classifier",)))
            disc_after = ("generate", "classifier")
        out.append(Stage("disc", fields=("seed", "data", "disc"), after=disc_after,
                         trains="disc.num_steps", outputs=("checkpoints/disc",)))
    else:
        out.append(Stage("disc", fields=("disc.source", "disc.checkpoint", "disc.classifier",
                                         "disc.classifier_flags", "disc.head_flags",
                                         "disc.conditional")))
    out.append(Stage("sample", fields=("seed", "sampler", "dg", "cg", "sample")
                     + SAMPLING_NUMERICS, after=("score", "disc"),
                     outputs=("samples_nodg", "samples_dg")))
    eval_after = ("sample",)
    if config.sweep.weights:
        out.append(Stage("sweep", fields=("seed", "sampler", "dg", "cg", "sample", "sweep")
                         + SAMPLING_NUMERICS, after=("score", "disc"), outputs=(SWEEP_DIR,)))
        eval_after = ("sample", "sweep")
    out.append(Stage("evaluate", fields=("seed", "eval", "data"), after=eval_after,
                     outputs=("results.json", "grid.png", "log_ratio.png", "fd_vs_dg_weight.png",
                              "disc_accuracy.png", "training_curve.png")))
    return tuple(out)


def validate(config, mesh) -> None:
    """Every field any stage of this config will use, checked before any work (errors name the
    field); paths are checked to exist. The networks are built (and checked against the data)
    by `run` before it touches the workdir."""
    s, d, c, e = config.score, config.data, config.disc, config.eval
    for stage in config.stages:
        check_choice(stage, STAGES, "stages")
    check_choice(s.family, ("edm", "adm"), "score.family")
    check_choice(s.source, ("train", "converted", "random"), "score.source")
    check_choice(c.get("source", "train"), DISC_SOURCES, "disc.source")
    check_choice(c.kind, ("conv", "adm"), "disc.kind")
    check_choice(e.features, FEATURES, "eval.features")
    check_choice(e.get("reference", "data"), M.REFERENCES, "eval.reference")
    if e.get("reference", "data") == "test" and d.source != "fashion_mnist":
        raise ConfigError("eval.reference='test' reads the test split of data.source="
                          f"'fashion_mnist'; data.source={d.source!r} has none here: use "
                          "eval.reference='data' or eval.ref_stats")
    for w in config.sweep.weights:
        if w < 0:
            raise ConfigError(f"sweep.weights holds {w}: DG weights must be >= 0")
    if config.sweep.weights:
        check_positive(config, ("sweep.num_samples",))
        if config.sweep.num_samples > min(config.sample.shard_size, config.sample.num_samples):
            raise ConfigError(f"sweep.num_samples={config.sweep.num_samples} must be at most "
                              f"sample.shard_size and sample.num_samples (the sweep reuses the "
                              "first samples of the main sets at weights 0 and dg.weight_1st)")
    if M.trains_classifier(config):
        ct = c.classifier_train
        check_positive(config, ("disc.classifier_train.batch_size",
                                "disc.classifier_train.log_every",
                                "disc.classifier_train.checkpoint_every"))
        check_divisible(ct.batch_size, mesh, "disc.classifier_train.batch_size")
        check_choice(ct.time_sampling, TIME_SAMPLINGS, "disc.classifier_train.time_sampling")
        if c.classifier:
            raise ConfigError("disc.classifier (a file) and disc.classifier_train.num_steps > 0 "
                              "(train one here) exclude each other; clear one")
    if s.source == "train" and s.train.get("curve_every", 0):
        check_positive(config, ("score.train.curve_samples",))
    if s.family == "adm" and s.source == "train":
        raise ConfigError("score.source='train' trains EDM models; for score.family='adm' "
                          "convert a guided-diffusion checkpoint (launch.convert --kind=adm_unet)")
    check_choice(d.source, M.DATA_SOURCES, "data.source")
    check_positive(config, ("data.resolution", "data.channels", "sampler.num_steps",
                            "sample.num_samples", "eval.num_samples", "eval.batch_size"))
    validate_window(config.dg.time_min, config.dg.time_max)
    for field in ("dg.weight_1st", "dg.weight_2nd", "cg.scale"):
        section, name = field.split(".")
        if config[section][name] < 0:
            raise ConfigError(f"{field}={config[section][name]} must be >= 0")
    check_divisible(config.sample.batch_size, mesh, "sample.batch_size")
    sections = ["sample"]
    if s.source == "train":
        check_positive(config, ("score.train.num_steps", "score.train.log_every",
                                "score.train.checkpoint_every"))
        check_divisible(s.train.batch_size, mesh, "score.train.batch_size")
    if c.get("source", "train") == "train":
        check_positive(config, ("generate.num_samples", "disc.num_steps", "disc.log_every",
                                "disc.checkpoint_every"))
        check_divisible(config.generate.batch_size, mesh, "generate.batch_size")
        check_divisible(c.batch_size, mesh, "disc.batch_size")
        check_choice(c.time_sampling, TIME_SAMPLINGS, "disc.time_sampling")
        if not c.learning_rate > 0:
            raise ConfigError(f"disc.learning_rate={c.learning_rate} must be positive")
        sections.append("generate")
    validate_shards_and_eval(config, sections,
                             ("eval.inception_weights", "eval.ref_stats", "cg.classifier"))


def needs_real_data(config) -> bool:
    """Real images are read only by score training, discriminator training and an evaluation
    whose reference is the data (not eval.ref_stats)."""
    return (config.score.source == "train" or config.disc.get("source", "train") == "train"
            or not config.eval.get("ref_stats", ""))


def make_any_sampler(config, model, params, logit_fn=None, dg_weight: float = 0.0):
    """jit(latents, labels, noise_key[, return_log_ratio]) for the score family in the config."""
    if config.score.family == "adm":
        return make_adm_sampler(config, model, logit_fn, dg_weight)
    return make_sampler(config, model, params, logit_fn, dg_weight)


def sigma_table(config, precond):
    s = config.sampler
    return denoiser_sigma_steps(precond, s.num_steps, s.sigma_min, s.sigma_max, s.rho)


# ---------------------------------------------------------------------------------------- score
def build_score(config):
    """(model, params) of the score model before training: converted, random or freshly
    initialised (EDM), or (AdmScore, None) for a guided-diffusion UNet. Built before any work:
    its errors (path, kind, resolution, labels) name the field."""
    if config.score.family == "adm":
        return build_adm_score(config), None
    return M.build_score_model(config)


def score_stage(run: Run, real, built, reference=None):
    """Returns (model, params) of the score model: `built` (see build_score), trained with EDM's
    loss when score.source='train' (with the training curve against `reference` when
    score.train.curve_every > 0)."""
    config = run.config
    precond, params = built
    if config.score.source != "train":
        return precond, params
    c = config.score.train
    images, labels = real
    tx = make_optimizer(c.optimizer, c.learning_rate, warmup_steps=c.warmup_steps,
                        field="score.train.optimizer")
    state = TrainState.create(params, tx, run.streams.key("train", "score"), ema=True)

    def denoise(p, x, sigma, y, key):
        return precond(p, x, sigma, y, train=True, rngs={"dropout": key})

    step = make_edm_train_step(denoise, tx, ema_decay=c.ema_decay)
    num_classes = config.data.num_classes

    def batch_fn(i):
        idx = run.streams.numpy("data", "score", i).integers(0, len(images), c.batch_size)
        idx = idx[process_slice(c.batch_size)]  # this process's rows of the global batch
        batch = {"images": images[idx]}
        if num_classes:
            batch["labels"] = np.eye(num_classes, dtype=np.float32)[labels[idx]]
        return batch

    curve_every = int(c.get("curve_every", 0))
    on_segment = _curve_recorder(run, precond, reference) if curve_every else None
    state = run.fit("score", state, step, batch_fn, num_steps=c.num_steps,
                    checkpoint_every=c.checkpoint_every, log_every=c.log_every,
                    steps_field="score.train.num_steps", segment_every=curve_every,
                    on_segment=on_segment)
    return precond, state.ema_params


def _curve_recorder(run: Run, precond, reference):
    """on_segment(state) of the score stage: the unguided FD of score.train.curve_samples
    samples of the EMA network (the same latents every time) against the evaluation reference,
    appended to workdir/score_curve.json (written atomically; segments done before a resume
    are kept)."""
    config = run.config
    c, e = config.score.train, config.eval
    path = run.workdir / CURVE_FILE
    backend, ref_feats = [], []  # built at the first segment

    def record(state):
        if not backend:
            backend.append(feature_backend(config, run.workdir))
            ref_feats.append(reference_features(backend[0], reference[0], e.batch_size))
        step = int(jax.device_get(state.step))
        curve = read_json(path, "training curve")["curve"] if path.is_file() else []
        curve = [r for r in curve if r["step"] < step]
        n, batch = int(c.curve_samples), int(config.sample.batch_size)
        fn = make_sampler(config, precond, state.ema_params)
        key = run.streams.key("eval", "curve")
        images = []
        for j in range(0, n, batch):
            lat, lab, noise_key = latents_and_labels(config, jax.random.fold_in(key, j), batch)
            images.append(shards.to_uint8(np.asarray(fn(lat, lab, noise_key))))
        images = np.concatenate(images)[:n]
        fd = fd_against(backend[0], images, ref_feats[0], e.batch_size)
        curve.append({"step": step, "fd": fd, "num_samples": n})
        log(f"[score] training curve: step {step} unguided FD {fd:.4f} ({n} samples)")
        write_json(path, {"curve": curve})

    return record


# ------------------------------------------------------------------------------------- sampling
def make_sampler(config, precond, score_params, logit_fn=None, dg_weight: float = 0.0):
    """jit(latents, labels, noise_key[, return_log_ratio]) -> samples: EDM Heun (dg_weight 0)
    or EDM-G++; `noise_key` draws the per-step noise of churn and boosting."""
    sigmas = sigma_table(config, precond)
    s, d = config.sampler, config.dg
    corr = None
    if logit_fn is not None:
        corr = dg_correction_fn(logit_fn, process=DG_PROCESS, time_min=d.time_min,
                                time_max=d.time_max, clip_probability=d.clip_probability,
                                with_log_ratio=True)
        corr = _with_classifier_guidance(config, corr, dg_weight)

    return make_edm_gpp_sampler(
        lambda x, sig, y: precond(score_params, x, sig, y), sigmas, corr,
        num_classes=config.data.num_classes, weight_1st=dg_weight, weight_2nd=d.weight_2nd,
        boosting=d.boosting, S_churn=s.S_churn, S_min=s.S_min, S_max=s.S_max, S_noise=s.S_noise,
        round_sigma=precond.round_sigma)


def _with_classifier_guidance(config, corr, dg_weight):
    """EDM-G++ with classifier guidance: the classifier's grad log p(y | x_tau, tau) (DG's
    time-dependent VP classifier, converted with --kind=adm_classifier) joins DG's term,
    scaled so that edm_gpp's weight_1st * corr gives w_DG * DG + w_CG * CG."""
    cg = config.cg
    if not cg.scale:
        return corr
    if not dg_weight:
        raise ValueError("cg.scale with dg.weight_1st=0 is not supported by EDM-G++ here; set a "
                         "DG weight")
    conv = load_weights(cg.classifier, "adm_classifier", field="cg.classifier",
                        require={"dg_time": True})

    def class_log_prob(x_vp, tau, labels):
        logits = conv.model.apply(conv.params, x_vp, tau)
        return jnp.take_along_axis(jax.nn.log_softmax(logits, -1), labels[:, None], -1)[:, 0]

    cg_corr = dg_correction_fn(class_log_prob, process=DG_PROCESS)
    ratio = cg.scale / dg_weight

    def combined(x, sigma, onehot):
        grad, log_ratio = corr(x, sigma, onehot)
        return grad + ratio * cg_corr(x, sigma, jnp.argmax(onehot, -1)), log_ratio

    return combined


# ---------------------------------------------------------------------------------------- disc
def disc_stage(run: Run, real, disc):
    """Trains the discriminator `disc` (M.build_discriminator) on real vs generated images."""
    config = run.config
    c = config.disc
    fake_images, fake_labels = shards.read_shards(run.workdir / "fake")
    M.check_fake_matches(config, fake_images, fake_labels)
    fake = shards.to_float(fake_images)
    images, labels = real
    tx = make_optimizer(c.optimizer, c.learning_rate, field="disc.optimizer")
    state = TrainState.create(disc.trainable, tx, run.streams.key("train", "disc"))
    conditional = bool(c.conditional)
    draws = int(c.get("precompute_draws", 0))
    if draws:
        step, batch_fn = _precomputed_head_training(run, disc, tx, real, (fake, fake_labels),
                                                    draws)
    else:
        step = make_train_step(disc.logit, tx, process=DG_PROCESS,
                               time_sampling=c.time_sampling, t_min=c.t_min)

        def batch_fn(i):
            rng = run.streams.numpy("data", "disc", i)
            rows = process_slice(c.batch_size)  # this process's rows of the global batch
            ri = rng.integers(0, len(images), c.batch_size)[rows]
            fi = rng.integers(0, len(fake), c.batch_size)[rows]
            batch = {"real": images[ri], "fake": fake[fi]}
            if conditional:
                batch["real_labels"], batch["fake_labels"] = labels[ri], fake_labels[fi]
            return batch

    state = run.fit("disc", state, step, batch_fn, num_steps=c.num_steps,
                    checkpoint_every=c.checkpoint_every, log_every=c.log_every,
                    steps_field="disc.num_steps")
    return disc, state.params


def _precomputed_head_training(run: Run, disc, tx, real, fake, draws: int):
    """(train step, batch_fn) of the head on frozen classifier features computed once for
    `draws` (tau, noise) draws of every real and generated image (disc.precompute_draws)."""
    config = run.config
    c = config.disc
    if disc.features is None:
        raise ValueError(f"disc.precompute_draws={draws} needs a discriminator with frozen "
                         f"features (disc.kind='adm'); disc.kind={c.kind!r} has none")
    key = run.streams.key("train", "disc", "precompute")
    pools = []  # filled at the first batch, so a finished (resumed) run computes nothing
    step = make_head_train_step(disc.head_logit, tx)
    targets = np.concatenate([np.ones(c.batch_size), np.zeros(c.batch_size)]).astype(np.float32)

    def batch_fn(i):
        if not pools:
            pools.extend(precompute_features(
                disc.features, images, jax.random.fold_in(key, k), num_draws=draws,
                process=DG_PROCESS, time_sampling=c.time_sampling, t_min=c.t_min,
                batch_size=config.generate.batch_size, name=f"disc {name}")
                for k, (name, (images, _)) in enumerate((("real", real), ("fake", fake))))
        rng = run.streams.numpy("data", "disc", i)
        picks = [rng.integers(0, len(p["tau"]), c.batch_size) for p in pools]
        rows = process_slice(2 * c.batch_size)  # this process's rows of the global batch
        batch = {"feats": np.concatenate([p["feats"][j] for p, j in zip(pools, picks)])[rows],
                 "tau": np.concatenate([p["tau"][j] for p, j in zip(pools, picks)])[rows],
                 "targets": targets[rows]}
        if c.conditional:
            batch["labels"] = np.concatenate([lab[p["index"][j]] for p, j, (_, lab)
                                              in zip(pools, picks, (real, fake))])[rows]
        return batch

    return step, batch_fn


# ------------------------------------------------------------------------------------------ run
def run(config: ml_collections.ConfigDict, workdir: str, source: str = "") -> dict:
    r = setup_run(config, workdir, "dg_images", workdir_stages(config), validate=validate,
                  ignore=RESUME_SAFE, source=source)
    workdir, mesh, wd = r.workdir, r.mesh, r.wd
    pretrained_disc = config.disc.get("source", "train") == "converted"
    # networks are built (and checked against the data) before the workdir is touched
    log(f"[setup] building the score model ({config.score.source}) and the discriminator "
        f"({config.disc.get('source', 'train')}, {config.disc.kind}) on {mesh.devices.size} "
        "device(s)")
    built_score = build_score(config)
    built_disc = (M.load_pretrained_discriminator(config) if pretrained_disc
                  else M.build_discriminator(config, classifier=M.build_dg_classifier(config)
                                             if M.trains_classifier(config) else None))
    real = M.load_real(config) if needs_real_data(config) else None
    if real is not None:
        log(f"[setup] {len(real[0])} real images from data.source={config.data.source!r}")
    reference = None
    if not config.eval.get("ref_stats", ""):
        reference = (M.load_reference(config) if config.eval.get("reference", "data") == "test"
                     else real)
        if reference is not real:
            log(f"[setup] evaluation reference: {len(reference[0])} test images")
        if len(reference[0]) < config.eval.num_samples:
            raise ConfigError(f"the reference set has {len(reference[0])} images, fewer than "
                              f"eval.num_samples={config.eval.num_samples} asked for")
    wd.open()
    stages = list(config.stages)

    with wd.stage("score"):
        precond, score_params = score_stage(r, real, built_score, reference)
    if "generate" in stages and not pretrained_disc:
        with wd.stage("generate"):
            g = config.generate
            write_sample_shards(config, workdir / "fake",
                                make_any_sampler(config, precond, score_params), g.num_samples,
                                g.batch_size, g.shard_size, r.streams.key("generate"), mesh,
                                "generate")
    disc = disc_params = None
    if any(s in stages for s in ("disc", "sample", "sweep", "evaluate")):
        if M.trains_classifier(config):
            with wd.stage("classifier"):
                built_disc = M.build_discriminator(
                    config, classifier=classifier_stage(r, real, DG_PROCESS))
        with wd.stage("disc"):
            disc, disc_params = ((built_disc, built_disc.trainable) if pretrained_disc
                                 else disc_stage(r, real, built_disc))
    results = None
    if "sample" in stages:
        with wd.stage("sample"):
            s = config.sample
            logit_fn = disc.bind(disc_params)
            for name, weight in (("samples_nodg", 0.0), ("samples_dg", config.dg.weight_1st)):
                fn = make_any_sampler(config, precond, score_params, logit_fn, weight)
                # the same latents, labels and noise with and without DG
                write_sample_shards(config, workdir / name, fn, s.num_samples, s.batch_size,
                                    s.shard_size, r.streams.key("sample"), mesh, name)
    if "sweep" in stages and config.sweep.weights:
        with wd.stage("sweep"):
            s = config.sample
            logit_fn = disc.bind(disc_params)
            for weight in sorted(set(float(w) for w in config.sweep.weights)):
                if weight in (0.0, float(config.dg.weight_1st)):
                    continue  # the main sample sets' first samples (evaluate.read_sweep)
                fn = make_any_sampler(config, precond, score_params, logit_fn, weight)
                n = config.sweep.num_samples  # one shard: shard 0's latents of the main sets
                write_sample_shards(config, sweep_dir(workdir, weight), fn, n, s.batch_size,
                                    -(-n // s.batch_size) * s.batch_size,
                                    r.streams.key("sample"), mesh, f"sweep w={weight:g}")
    if "evaluate" in stages:
        if wd.is_done("evaluate"):
            log(f"[evaluate] done earlier with these fields: {workdir / 'results.json'}")
            return read_json(workdir / "results.json", "results")
        with wd.stage("evaluate"):
            results = evaluate(config, workdir, reference, precond, score_params, disc,
                               disc_params, make_any_sampler, process=DG_PROCESS)
    return results
