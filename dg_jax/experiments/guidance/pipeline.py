"""Training score models and guides (configs/digits_guidance.py, cifar10_iddpm.py,
cifar10_edm_train.py, imagenet64_adm_cfg.py), each stage resumable from the workdir.

Stages (config.stages):
  score       the score model: improved DDPM (score.family='iddpm': L_simple / hybrid with
              learned-range variance, uniform or loss-second-moment t, label dropout for
              classifier-free guidance) or EDM (score.family='edm': EDM's loss, EMA half-life,
              learning-rate ramp); checkpoints under checkpoints/score;
  classifier  the noisy classifier for classifier guidance (ADM encoder on q_sample'd inputs at
              uniform t, cross entropy); checkpoints/classifier;
  vlb         two small unconditional models trained for the same steps with the hybrid loss +
              importance sampling and with L_simple; VLB (bits/dim) of held-out images;
  sweep       guidance-weight sweeps for CG (DDPM mean shift and/or DDIM eps shift) and CFG,
              scored by an independent classifier (accuracy, FD, precision, recall;
              dg_jax.experiments.guidance.sweep); kept in DIR/sweep.json;
  cfg_dg      DG on top of CFG at the sweep's best weight: generated samples, DG's
              discriminator on the frozen noisy classifier, CFG + DG at cfg_dg.weights
              (dg_jax.experiments.guidance.cfg_dg); checkpoints/cfg_dg, cfg_dg/fake.npz.
Writes DIR/results.json (whatever the stages produced), DIR/guidance.png for the sweep and
DIR/cfg_dg.png for cfg_dg.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dg_jax.checkpoint import write_json
from dg_jax.diffusion.iddpm_losses import calc_bpd_loop
from dg_jax.errors import check_finite, read_json
from dg_jax.experiments.guidance import models as GM
from dg_jax.experiments.guidance.cfg_dg import RESULTS as CFG_DG_RESULTS
from dg_jax.experiments.guidance.cfg_dg import cfg_dg_stage
from dg_jax.experiments.guidance.sweep import (
    SAMPLERS,
    SCORERS,
    sampler_diffusion,
    scorer,
    sweep_stage,
)
from dg_jax.experiments.kit.setup import Run, setup_run
from dg_jax.metric_writers import log
from dg_jax.models.edm_precond import edm_precond_from_kwargs
from dg_jax.parallel import check_divisible, process_slice
from dg_jax.train.edm_train import edm_optimizer, make_edm_schedule_train_step
from dg_jax.train.iddpm_train import (
    SCHEDULE_SAMPLERS,
    DiffusionTrainState,
    initial_loss_state,
    make_iddpm_train_step,
)
from dg_jax.train.noisy_classifier import make_noisy_classifier_step
from dg_jax.train.state import TrainState, make_optimizer
from dg_jax.validate import check_choice, check_positive
from dg_jax.workdir import Stage

STAGES = ("score", "classifier", "vlb", "sweep", "cfg_dg")
SWEEP_RESULTS = "sweep.json"
FAMILIES = ("iddpm", "edm")
RESUME_SAFE_FIELDS = ("stages", "tensorboard", "score.train.log_every",
                      "score.train.checkpoint_every", "classifier.train.log_every",
                      "classifier.train.checkpoint_every", "vlb.train.log_every",
                      "vlb.train.checkpoint_every", "cfg_dg.log_every",
                      "cfg_dg.checkpoint_every")
WORKDIR_STAGES = (
    Stage("score", fields=("seed", "data", "score"), trains="score.train.num_steps",
          outputs=("checkpoints/score", "score")),
    Stage("classifier", fields=("seed", "data", "classifier", *GM.SCORE_DIFFUSION_FIELDS),
          trains="classifier.train.num_steps", outputs=("checkpoints/classifier", "classifier")),
    Stage("vlb", fields=("seed", "data", "vlb"), trains="vlb.train.num_steps",
          outputs=("checkpoints/vlb_hybrid_is", "checkpoints/vlb_simple", "vlb_hybrid_is",
                   "vlb_simple")),
    Stage("sweep", fields=("seed", "data", "sweep"), after=("score", "classifier"),
          outputs=("guidance.png", SWEEP_RESULTS)),
    Stage("cfg_dg", fields=("seed", "data", "sweep", "cfg_dg"), after=("sweep",),
          trains="cfg_dg.num_steps", outputs=("checkpoints/cfg_dg", "cfg_dg", "cfg_dg.png")),
)


def validate(config, mesh) -> None:
    unknown = sorted(set(config.stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown} (field 'stages'); choose from {list(STAGES)}")
    s = config.score
    if s.family not in FAMILIES:
        raise ValueError(f"unknown score.family {s.family!r}; choose one of {list(FAMILIES)}")
    if s.schedule_sampler not in SCHEDULE_SAMPLERS:
        raise ValueError(f"unknown schedule sampler {s.schedule_sampler!r} (field "
                         f"'score.schedule_sampler'); choose one of {list(SCHEDULE_SAMPLERS)}")
    if not 0.0 <= s.p_uncond < 1.0:
        raise ValueError(f"score.p_uncond={s.p_uncond} must lie in [0, 1)")
    if s.p_uncond > 0 and not s.flags.class_cond:
        raise ValueError("score.p_uncond > 0 (label dropout) needs score.flags.class_cond=True")
    check_divisible(s.train.batch_size, mesh, "score.train.batch_size")
    check_positive(config, ("score.train.num_steps", "score.train.log_every",
                            "score.train.checkpoint_every"))
    if "classifier" in config.stages:
        check_divisible(config.classifier.train.batch_size, mesh, "classifier.train.batch_size")
    if "vlb" in config.stages:
        check_divisible(config.vlb.train.batch_size, mesh, "vlb.train.batch_size")
    if "sweep" in config.stages:
        if s.family != "iddpm" or not s.flags.class_cond or s.p_uncond <= 0:
            raise ValueError("the 'sweep' stage needs an improved-DDPM score model trained with "
                             "label dropout: score.family='iddpm', score.flags.class_cond=True, "
                             "score.p_uncond > 0")
        check_divisible(config.sweep.batch_size, mesh, "sweep.batch_size")
        check_choice(config.sweep.get("scorer", "digits"), SCORERS, "sweep.scorer")
        for sampler in config.sweep.get("cg_samplers", []):
            check_choice(sampler, SAMPLERS, "sweep.cg_samplers")
            sampler_diffusion(config, sampler)  # a respacing that does not fit names its field
        sampler_diffusion(config, config.sweep.sampler)
    if "cfg_dg" in config.stages:
        if "sweep" not in config.stages:
            raise ValueError("the 'cfg_dg' stage samples from the sweep's latents with its "
                             "scorer: add 'sweep' to stages")
        c = config.cfg_dg
        check_positive(config, ("cfg_dg.num_fake", "cfg_dg.num_steps", "cfg_dg.batch_size",
                                "cfg_dg.log_every", "cfg_dg.checkpoint_every"))
        check_divisible(c.batch_size, mesh, "cfg_dg.batch_size")
        if not c.learning_rate > 0:
            raise ValueError(f"cfg_dg.learning_rate={c.learning_rate} must be positive")
        if any(float(w) < 0 for w in c.weights) or not len(c.weights):
            raise ValueError(f"cfg_dg.weights={list(c.weights)} must be a non-empty list of "
                             "DG weights >= 0")
    if "sweep" in config.stages:
        if config.sweep.num_samples % config.sweep.batch_size:
            raise ValueError(f"sweep.num_samples={config.sweep.num_samples} is not a multiple "
                             f"of sweep.batch_size={config.sweep.batch_size}")


def _batch_fn(run: Run, images, labels, batch_size: int, name: str, one_hot: int = 0):
    """Minibatches of stage `name` from the data stream (name, step)."""
    rows = process_slice(batch_size)

    def batch_fn(step):
        idx = run.streams.numpy("data", name, step).integers(0, len(images), batch_size)[rows]
        batch = {"images": images[idx]}
        if labels is not None:
            batch["labels"] = (np.eye(one_hot, dtype=np.float32)[labels[idx]] if one_hot
                               else labels[idx])
        return batch

    return batch_fn


def _fit(run: Run, name: str, state, step_fn, batch_fn, t, steps_field: str):
    """`run.fit` with the step counts of train section `t`."""
    return run.fit(name, state, step_fn, batch_fn, num_steps=t.num_steps,
                   checkpoint_every=t.checkpoint_every, log_every=t.log_every,
                   steps_field=steps_field)


def _adamw(t, field: str):
    return make_optimizer("adamw" if t.weight_decay else "adam", t.learning_rate,
                          weight_decay=t.weight_decay, grad_clip=t.grad_clip, field=field)


def train_iddpm(run: Run, images, labels, *, name: str, unet_cfg, diff_cfg, train_cfg,
                class_cond: bool, p_uncond: float, schedule_sampler: str):
    """Trains a guided-diffusion UNet with the improved-DDPM objective; returns
    (unet, diffusion, state). Its init, train and data streams are named `name`."""
    config = run.config
    d = config.data
    num_classes = (d.num_classes + (1 if p_uncond > 0 else 0)) if class_cond else None
    diffusion = GM.make_diffusion(diff_cfg, field=f"{name}.flags")
    unet = GM.build_unet(unet_cfg, d, learn_sigma=bool(diff_cfg.learn_sigma),
                         num_classes=num_classes, field=f"{name}.flags")
    x0 = jnp.zeros((1,) + images.shape[1:])
    y0 = jnp.zeros((1,), jnp.int32) if class_cond else None
    params = unet.init(run.streams.key("init", name), x0, jnp.zeros((1,), jnp.int32), y0)["params"]
    tx = _adamw(train_cfg, f"{name}.train")

    def apply_fn(p, x_t, t_model, y, k):
        return unet.apply({"params": p}, x_t, t_model, y, train=True, rngs={"dropout": k})

    state = DiffusionTrainState.create(params, tx, run.streams.key("train", name),
                                       initial_loss_state(schedule_sampler, diffusion,
                                                          f"{name}.schedule_sampler"))
    step_fn = make_iddpm_train_step(apply_fn, diffusion, tx, ema_decay=train_cfg.ema_decay,
                                    schedule_sampler=schedule_sampler, p_uncond=p_uncond,
                                    null_label=d.num_classes if p_uncond > 0 else None)
    batch_fn = _batch_fn(run, images, labels if class_cond else None, train_cfg.batch_size,
                         name)
    state = _fit(run, name, state, step_fn, batch_fn, train_cfg,
                 f"{name.split('_')[0]}.train.num_steps")
    return unet, diffusion, state


def train_edm(run: Run, images, labels):
    """EDM's loss with its EMA half-life and learning-rate ramp; returns (precond, state)."""
    config = run.config
    s, d, t = config.score, config.data, config.score.train
    precond = edm_precond_from_kwargs(s.edm.class_name, s.edm.init_kwargs.to_dict())
    if (precond.img_resolution, precond.img_channels) != (d.resolution, d.channels):
        raise ValueError(f"score.edm.init_kwargs describe {precond.img_resolution}x"
                         f"{precond.img_resolution}x{precond.img_channels} images, data is "
                         f"{d.resolution}x{d.resolution}x{d.channels}")
    label_dim = precond.label_dim
    y0 = jnp.zeros((1, label_dim)) if label_dim else None
    params = precond.model.init(run.streams.key("init", "score"),
                                jnp.zeros((1,) + images.shape[1:]), jnp.zeros((1,)), y0)["params"]
    tx = edm_optimizer(t.learning_rate, t.batch_size, s.edm.lr_rampup_kimg)

    def denoise(p, x, sigma, y, k):
        return precond(p, x, sigma, y, train=True, rngs={"dropout": k})

    state = TrainState.create(params, tx, run.streams.key("train", "score"), ema=True)
    step_fn = make_edm_schedule_train_step(
        denoise, tx, batch_size=t.batch_size, ema_halflife_kimg=s.edm.ema_halflife_kimg,
        ema_rampup_ratio=s.edm.ema_rampup_ratio)
    batch_fn = _batch_fn(run, images, labels if label_dim else None, t.batch_size, "score",
                         one_hot=label_dim)
    return precond, _fit(run, "score", state, step_fn, batch_fn, t, "score.train.num_steps")


def train_classifier(run: Run, images, labels, diffusion):
    """Noisy classifier on q_sample'd inputs; returns (model, params)."""
    config = run.config
    c = config.classifier
    model = GM.build_classifier(c.flags, config.data)
    params = model.init(run.streams.key("init", "classifier"), jnp.zeros((1,) + images.shape[1:]),
                        jnp.zeros((1,), jnp.int32))["params"]
    tx = _adamw(c.train, "classifier.train")

    def logits_fn(p, x_t, t_model, k):
        return model.apply({"params": p}, x_t, t_model, train=True, rngs={"dropout": k})

    state = TrainState.create(params, tx, run.streams.key("train", "classifier"))
    state = _fit(run, "classifier", state, make_noisy_classifier_step(logits_fn, diffusion, tx),
                 _batch_fn(run, images, labels, c.train.batch_size, "classifier"), c.train,
                 "classifier.train.num_steps")
    return model, state.params


def vlb_stage(run: Run, train_images, heldout) -> dict:
    """Bits/dim on held-out images of two models trained for equal steps: 'hybrid_is'
    (learned-range variance, L_simple + L_vlb, loss-second-moment t) and 'simple' (fixed
    variance, L_simple, uniform t)."""
    v = run.config.vlb
    out = {}
    variants = {"hybrid_is": (True, "loss-second-moment"), "simple": (False, "uniform")}
    for name, (learn_sigma, sampler) in variants.items():
        dcfg = ml_collections.ConfigDict(v.flags.to_dict())
        dcfg.learn_sigma = learn_sigma
        unet, diffusion, state = train_iddpm(
            run, train_images, None, name=f"vlb_{name}", unet_cfg=dcfg, diff_cfg=dcfg,
            train_cfg=v.train, class_cond=False, p_uncond=0.0, schedule_sampler=sampler)
        params = jax.device_get(state.ema_params)

        @jax.jit
        def bpd(x, key):
            fn = lambda x_t, t: unet.apply({"params": params}, x_t, t)  # noqa: E731
            return calc_bpd_loop(diffusion, fn, x, key)["total_bpd"]

        key = run.streams.key("eval", "vlb", name)
        vals = [np.asarray(bpd(jnp.asarray(heldout[i:i + v.eval_batch_size]),
                               jax.random.fold_in(key, i)))
                for i in range(0, len(heldout), v.eval_batch_size)]
        out[name] = float(np.mean(np.concatenate(vals)))
        log(f"[vlb] {name}: {out[name]:.4f} bits/dim on {len(heldout)} held-out images")
    return out


def run(config: ml_collections.ConfigDict, workdir: str, source: str = "") -> dict:
    r = setup_run(config, workdir, "guidance_train", WORKDIR_STAGES, validate=validate,
                  ignore=RESUME_SAFE_FIELDS, source=source)
    workdir, wd = r.workdir, r.wd
    images, labels = GM.load_data(config.data, config.seed)
    wd.open()
    train_images, train_labels, heldout = GM.split_holdout(images, labels, config.data.holdout)
    results: dict = {}
    unet = diffusion = score_state = clf = clf_params = None
    s = config.score
    if "score" in config.stages or "sweep" in config.stages:
        wd.start("score")
        if s.family == "edm":
            _, score_state = train_edm(r, train_images, train_labels)
        else:
            unet, diffusion, score_state = train_iddpm(
                r, train_images, train_labels, name="score", unet_cfg=s.flags,
                diff_cfg=s.flags, train_cfg=s.train, class_cond=s.flags.class_cond,
                p_uncond=s.p_uncond, schedule_sampler=s.schedule_sampler)
        results["score_steps"] = int(jax.device_get(score_state.step))
        wd.finish("score")
    if "classifier" in config.stages or "sweep" in config.stages:
        wd.start("classifier")
        clf_diffusion = diffusion or GM.make_diffusion(s.flags)
        clf, clf_params = train_classifier(r, train_images, train_labels, clf_diffusion)
        wd.finish("classifier")
    if "vlb" in config.stages:
        wd.start("vlb")
        results["vlb_bits_per_dim"] = vlb_stage(r, train_images, heldout)
        wd.finish("vlb")
    if "sweep" in config.stages:
        params, clf_params = jax.device_get(score_state.ema_params), jax.device_get(clf_params)
        backend, real_feats, scorer_info = scorer(r)
        results.update(scorer_info)
        sweep_path = workdir / SWEEP_RESULTS
        if wd.is_done("sweep") and sweep_path.exists():
            sweep = read_json(sweep_path, "the sweep's results")
            log(f"[sweep] done earlier with these fields: {sweep_path}")
        else:
            wd.start("sweep")
            sweep = sweep_stage(r, unet, params, clf, clf_params, images, backend, real_feats)
            check_finite(sweep, "sweep")
            write_json(sweep_path, sweep)
            wd.finish("sweep")
        results.update(sweep)
        dg_path = workdir / CFG_DG_RESULTS
        if "cfg_dg" in config.stages and wd.is_done("cfg_dg") and dg_path.exists():
            results["cfg_dg"] = read_json(dg_path, "the cfg_dg stage's results")
            log(f"[cfg_dg] done earlier with these fields: {dg_path}")
        elif "cfg_dg" in config.stages:
            with wd.stage("cfg_dg"):
                results["cfg_dg"] = cfg_dg_stage(r, unet, params, clf, clf_params, diffusion,
                                                 train_images, train_labels, backend,
                                                 real_feats, sweep)
    check_finite(results, "results")
    write_json(workdir / "results.json", results)
    log(f"[done] wrote {workdir / 'results.json'}")
    return results
