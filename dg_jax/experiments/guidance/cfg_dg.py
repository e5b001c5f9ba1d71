"""DG on top of classifier-free guidance (stage 'cfg_dg'; DG's ImageNet recipe, where ADM-G++ and
DiT-G++ add the discriminator's correction to an already guided sampler).

1. The CFG weight w* (cfg_dg.cfg_weight, or the lowest-FD weight of the sweep's CFG rows).
2. cfg_dg.num_fake samples with CFG at w* (balanced labels, the 'sample/cfg_dg_fake' stream,
   quantised to uint8 as real data is) -> WORKDIR/cfg_dg/fake.npz.
3. DG's discriminator: the classifier stage's noisy classifier, frozen, as the feature network
   (its time input read as DG's tau = t / 999) and a trained class-conditional head
   (cfg_dg.head_flags, guided-diffusion classifier flags; image_size and in_channels come from
   the classifier's middle-block features). Real = the training images, fake = step 2's; both
   diffused by the score model's own process at uniform t (`discrete_diffuse`), so the
   discriminator sees exactly the sampler's x_t; BCE, Adam -> WORKDIR/checkpoints/cfg_dg.
4. CFG at w* plus DG's cond_fn (`dg_cond_fn`: w_DG * grad log(d / (1 - d)), a mean shift for
   DDPM, an eps shift for DDIM) at each of cfg_dg.weights, from the sweep's latents and labels
   (weight 0 is the sweep's CFG row at w*), scored as the sweep is.
Results: {"cfg_weight", "num_fake", "disc_accuracy_by_t", "rows": [{"weight", "accuracy",
"fd", "precision", "recall"}]}, kept in WORKDIR/cfg_dg/results.json, and WORKDIR/cfg_dg.png.
"""
from __future__ import annotations

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax import rng
from dg_jax.checkpoint import write_json
from dg_jax.data import shards
from dg_jax.diffusion.iddpm import q_sample
from dg_jax.errors import ConfigError, check_finite
from dg_jax.experiments.guidance import sweep as S
from dg_jax.metric_writers import log
from dg_jax.models.adm_flags import classifier_from_flags
from dg_jax.models.dg_discriminator import DGDiscriminator, Discriminator
from dg_jax.parallel import process_slice, replicate
from dg_jax.train.discriminator import discrete_diffuse, make_train_step
from dg_jax.train.state import TrainState, make_optimizer

FAKE = "cfg_dg/fake.npz"
RESULTS = "cfg_dg/results.json"
TIME_SCALE = 999.0  # DG's tau = t / 999 (`dg_cond_fn`'s timestep_scale)


def best_cfg_weight(config, sweep_results: dict | None) -> float:
    """cfg_dg.cfg_weight, or (when < 0) the CFG weight of the sweep's lowest FD."""
    w = float(config.cfg_dg.cfg_weight)
    if w >= 0:
        return w
    rows = (sweep_results or {}).get("cfg")
    if not rows:
        raise ConfigError("cfg_dg.cfg_weight < 0 takes the sweep's lowest-FD CFG weight, but "
                          "no CFG sweep rows are available; run the 'sweep' stage or set "
                          "cfg_dg.cfg_weight >= 0")
    return float(min(rows, key=lambda r: r["fd"])["weight"])


def build_discriminator(config, clf, clf_params, image_shape) -> Discriminator:
    """The frozen noisy classifier (time read as tau * 999 = the model timestep) + a fresh
    class-conditional head on its middle-block features."""
    feat_net = clf.clone(time_scale=TIME_SCALE)
    c_vars = {"params": clf_params}
    shape = jax.eval_shape(lambda: feat_net.apply(
        c_vars, jnp.zeros((1,) + tuple(image_shape)), jnp.zeros((1,)), feature=True)).shape
    flags = dict(config.cfg_dg.head_flags.to_dict())
    for key, value in (("image_size", shape[1]), ("in_channels", shape[-1]), ("out_channels", 1)):
        if key in flags and int(flags[key]) != value:
            raise ConfigError(f"cfg_dg.head_flags.{key}={flags[key]} contradicts the classifier's "
                              f"features ({shape[1:]}, one logit); leave it out")
        flags[key] = value
    flags["condition"] = True
    try:
        head = classifier_from_flags(flags, dg_time=True)
    except ValueError as err:
        raise ConfigError(f"cfg_dg.head_flags: {err}") from err
    disc = DGDiscriminator(feat_net, head)
    return Discriminator.frozen_classifier(disc, c_vars,
                                           disc.init_head(rng.key(config.seed, "init", "cfg_dg")))


def generate_fakes(run, sampler, weight: float, image_shape, num_classes: int):
    """(uint8 samples, labels) of CFG at `weight`, read back from WORKDIR/cfg_dg/fake.npz when an
    intact file is there."""
    c = run.config.cfg_dg
    path = run.workdir / FAKE
    if shards.file_is_intact(path):
        data = shards.load_npz(path)
        log(f"[cfg_dg] {len(data['images'])} generated images read from {path}")
        return data["images"], data["labels"]
    n = int(c.num_fake)
    labels = np.arange(n, dtype=np.int32) % num_classes
    t0 = time.perf_counter()
    log(f"[cfg_dg] generating {n} samples with CFG w={weight:g} (the first batch compiles)")
    images = S.sample_set(run, sampler, weight, run.streams.key("sample", "cfg_dg_fake"), labels,
                          image_shape, run.config.sweep.batch_size, name="cfg_dg fake")
    if jax.process_index() == 0:
        shards.save_npz(path, images=images, labels=labels)
    log(f"[cfg_dg] wrote {path} ({time.perf_counter() - t0:.1f}s)")
    return images, labels


def train_discriminator(run, disc: Discriminator, diffusion, real, real_labels, fake_u8,
                        fake_labels):
    c = run.config.cfg_dg
    fake = shards.to_float(fake_u8)
    tx = make_optimizer("adam", c.learning_rate, field="cfg_dg.learning_rate")
    state = TrainState.create(disc.trainable, tx, run.streams.key("train", "cfg_dg"))
    step = make_train_step(disc.logit, tx, diffuse=discrete_diffuse(diffusion, TIME_SCALE))
    half = c.batch_size

    def batch_fn(i):
        gen = run.streams.numpy("data", "cfg_dg", i)
        rows = process_slice(half)
        ri, fi = gen.integers(0, len(real), half)[rows], gen.integers(0, len(fake), half)[rows]
        return {"real": real[ri], "fake": fake[fi], "real_labels": real_labels[ri],
                "fake_labels": fake_labels[fi]}

    state = run.fit("cfg_dg", state, step, batch_fn, num_steps=c.num_steps,
                    checkpoint_every=c.checkpoint_every, log_every=c.log_every,
                    steps_field="cfg_dg.num_steps")
    return jax.device_get(state.params)


def accuracy_by_t(run, disc: Discriminator, head, diffusion, real, real_labels, fake_u8,
                  fake_labels, fractions=(0.0, 0.1, 0.25, 0.5, 0.75), n: int = 256
                  ) -> list[dict]:
    """The discriminator's accuracy on n real and n generated training images diffused to the
    model steps t = fraction * (T - 1) (training data: a diagnostic of what it learned, not a
    held-out score)."""
    gen = run.streams.numpy("eval", "cfg_dg")
    ri, fi = gen.integers(0, len(real), n), gen.integers(0, len(fake_u8), n)
    x0 = jnp.asarray(np.concatenate([real[ri], shards.to_float(fake_u8[fi])]))
    y = jnp.asarray(np.concatenate([real_labels[ri], fake_labels[fi]]))
    target = np.concatenate([np.ones(n), np.zeros(n)]) > 0.5
    logit = jax.jit(lambda h, x, tau, y: disc.logit(h, x, tau, y))
    out = []
    key = run.streams.key("eval", "cfg_dg")
    last = diffusion.num_timesteps - 1
    for t in sorted({round(f * last) for f in fractions}):
        tt = jnp.full((2 * n,), t, jnp.int32)
        x_t = q_sample(diffusion, x0, tt, jax.random.normal(jax.random.fold_in(key, t), x0.shape))
        lg = np.asarray(logit(head, x_t, tt.astype(jnp.float32) / TIME_SCALE, y))
        out.append({"t": t, "accuracy": float(np.mean((lg > 0) == target))})
    return out


def cfg_dg_stage(run, unet, params, clf, clf_params, diffusion, real, real_labels, backend,
                 real_feats, sweep_results: dict | None) -> dict:
    config = run.config
    c, d = config.cfg_dg, config.data
    image_shape = real.shape[1:]
    w_cfg = best_cfg_weight(config, sweep_results)
    log(f"[cfg_dg] DG on top of CFG w={w_cfg:g}")
    cfg_sampler = S.make_guided_sampler(config, unet, params, clf, clf_params, "cfg")
    fake, fake_labels = generate_fakes(run, cfg_sampler, w_cfg, image_shape, d.num_classes)
    disc = build_discriminator(config, clf, clf_params, image_shape)
    head = train_discriminator(run, disc, diffusion, real, real_labels, fake, fake_labels)
    by_t = accuracy_by_t(run, disc, head, diffusion, real, real_labels, fake, fake_labels)
    log("[cfg_dg] discriminator accuracy by t (training images): "
        + ", ".join(f"t={r['t']}: {r['accuracy']:.3f}" for r in by_t))
    sampler = S.make_guided_sampler(config, unet, params, clf, clf_params, "cfg_dg",
                                    dg=dict(cfg_weight=w_cfg, logit=disc.bind(replicate(
                                        head, run.mesh))))
    rows, grids = S.sweep_rows(run, sampler, c.weights, backend, real_feats, image_shape,
                               "cfg_dg", stage="cfg_dg")
    results = {"cfg_weight": w_cfg, "num_fake": int(c.num_fake), "disc_accuracy_by_t": by_t,
               "rows": rows}
    check_finite(results, "cfg_dg")
    write_json(run.workdir / RESULTS, results)
    if jax.process_index() == 0:
        from dg_jax.experiments.guidance.plot import plot_cfg_dg  # noqa: PLC0415

        path = pathlib.Path(run.workdir) / "cfg_dg.png"
        plot_cfg_dg(path, results, grids, d.num_classes)
        log(f"[cfg_dg] wrote {path}")
    return results
