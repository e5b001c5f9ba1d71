"""Measures throughput of a DG image config and writes DIR/benchmark.json.

  python -m launch.benchmark --config=configs/cifar10_edm_dg.py --workdir=/tmp/bench \
      --config.sample.batch_size=512
  python -m launch.benchmark --config=configs/cifar10_edm_dg.py:smoke --workdir=/tmp/bench_smoke

Reports, on whatever devices JAX sees (the JSON says which), for each compute dtype in
--dtypes (default float32 and bfloat16): EDM Heun
sampling images/s with and without DG at sample.batch_size (score model and discriminator of
the config's architectures, with random weights unless --weights=config), the DG overhead
ratio, the samplers' compile time cold (empty persistent compilation cache) and warm (read back
from it), EDM score-training images/s (EDM loss, Adam, EMA; batch --score_train_batch) and
discriminator-training images/s, each with its compile time; the bfloat16 speed-up over float32;
and FID Inception feature images/s (random weights, float32). For a DiT-G++ config
(pipeline 'dit_dg', configs/imagenet256_dit_dg.py) it reports instead, under `dit_dg`, the DiT
forward, DiT-G++ sampling (latents, the config's respacing and CFG) without and with DG, and the
VAE decode, images/s per dtype. The first dtype's numbers are also
at the top level (`sampling_plain`, `sampling_dg`, `dg_overhead`, `score_training`,
`disc_training`). Attention layers use `attention_impl='auto'` (cuDNN's fused kernel on GPUs in
bfloat16). On CPU the JSON says so in `note`: the numbers only show the benchmark runs
(CPUs emulate much of bfloat16); compare speeds on accelerators.
FLOPs are counted from the traced programs (`dg_jax/flops.py`: 2 x the multiply-adds of every
convolution and matmul; XLA's cost analysis misses cuDNN's convolutions on GPU), so
`tflops_per_second` and `mfu` (against the device's dense peak in that dtype, None where the
peak is unknown, e.g. on CPU) are comparable across backends. A `lax.cond` counts as its
costlier branch, so Heun sampling counts 36 evaluations (the last step's skipped correction
included) against the 35 it runs: FLOPs and MFU of sampling read about 3% high.
"""
import json
import pathlib
import shutil
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from dg_jax.compile_cache import enable_compilation_cache
from dg_jax.convert.dit import dit_from_arch
from dg_jax.convert.saved import load_weights
from dg_jax.diffusion.iddpm import create_dit_diffusion
from dg_jax.diffusion.processes import VP
from dg_jax.eval.benchmark_inception import inception_throughput
from dg_jax.flops import count_flops, peak_flops
from dg_jax.guidance.discriminator import dg_correction_fn
from dg_jax.metric_writers import log
from dg_jax.models.dg_discriminator import discriminator_from_spec
from dg_jax.models.edm_precond import edm_precond_from_kwargs, init_precond_params, with_compute
from dg_jax.models.precision import compute_dtype as check_dtype
from dg_jax.models.sd_vae import SD_VAE_CONFIG, autoencoder_kl_from_config, decode_latents
from dg_jax.parallel import data_sharding, make_mesh, replicate
from dg_jax.samplers.dit_gpp import make_dit_gpp_sampler
from dg_jax.samplers.edm import denoiser_sigma_steps
from dg_jax.samplers.edm_gpp import make_edm_gpp_sampler
from dg_jax.train.discriminator import make_train_step
from dg_jax.train.edm_loss import make_edm_train_step
from dg_jax.train.state import TrainState, make_optimizer

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "config file (path[:variant])", lock_config=True)
flags.DEFINE_string("workdir", None, "where benchmark.json goes")
flags.DEFINE_integer("repeats", 3, "timed repetitions after the compile run")
flags.DEFINE_integer("inception_batch", 0, "Inception batch (0: sample.batch_size)")
flags.DEFINE_integer("score_train_batch", 0, "score-training batch (0: sample.batch_size)")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "compute dtypes to measure")
flags.DEFINE_enum("weights", "random", ["random", "config"],
                  "'random': the config's architectures with random weights (speed does not "
                  "depend on them; no checkpoint needed); 'config': the config's checkpoints")
flags.mark_flags_as_required(["config", "workdir"])

CPU_NOTE = ("measured on CPU: these numbers only show that the benchmark runs; CPUs emulate "
            "much of bfloat16 and say nothing about GPU/TPU throughput")


def _time(fn, repeats):
    """(compile+first run seconds, mean seconds per later run); blocks on the results."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn())
    return first, (time.perf_counter() - t0) / repeats


def _compile_cold_warm(fn, *args) -> dict:
    """Compile seconds of `fn(*args)` with an empty persistent cache (cold) and again after
    clearing JAX's in-memory caches, so the program is read back from the persistent cache
    (warm). main() points the cache at a fresh temporary folder, so cold is really cold."""
    out = {}
    for key in ("compile_cold_seconds", "compile_warm_seconds"):
        jax.clear_caches()
        t0 = time.perf_counter()
        jax.jit(fn).lower(*args).compile()
        out[key] = time.perf_counter() - t0
    return out


def _samplers(config, precond, params, disc):
    """The config's EDM Heun sampler without and with DG (`make_edm_gpp_sampler`), built from
    its sampler and dg fields as the DG image experiment builds them."""
    s, d = config.sampler, config.dg
    sigmas = denoiser_sigma_steps(precond, s.num_steps, s.sigma_min, s.sigma_max, s.rho)
    corr = dg_correction_fn(disc.bind(disc.trainable), process=VP(0.1, 20.0),
                            time_min=d.time_min, time_max=d.time_max,
                            clip_probability=d.clip_probability, with_log_ratio=True)
    churn = dict(S_churn=s.S_churn, S_min=s.S_min, S_max=s.S_max, S_noise=s.S_noise,
                 round_sigma=precond.round_sigma, num_classes=config.data.num_classes)
    denoise = lambda x, sig, y: precond(params, x, sig, y)  # noqa: E731
    return (make_edm_gpp_sampler(denoise, sigmas, **churn),
            make_edm_gpp_sampler(denoise, sigmas, corr, weight_1st=d.weight_1st,
                                 weight_2nd=d.weight_2nd, boosting=d.boosting, **churn))


def _sampling(config, precond, params, disc, latents, labels, repeats, tag):
    batch = latents.shape[0]
    plain, guided = _samplers(config, precond, params, disc)
    peak = peak_flops(jax.devices()[0].device_kind, tag)
    onehot = None if labels is None else jax.nn.one_hot(labels[:1], precond.label_dim)
    net = count_flops(lambda x: precond(params, x, jax.numpy.ones((1,)), onehot), latents[:1])
    out = {"network_gflop_per_image_per_evaluation": net / 1e9,
           "peak_tflops_per_device": None if peak is None else peak / 1e12}
    for name, fn in (("sampling_plain", plain), ("sampling_dg", guided)):
        key = jax.random.PRNGKey(0)
        compile_times = _compile_cold_warm(fn, latents, labels, key)
        first, per = _time(lambda: fn(latents, labels, key), repeats)
        flops = count_flops(fn, latents, labels, key)  # analytic: convolutions and matmuls
        out[name] = {"images_per_second": batch / per, "compile_seconds": first - per,
                     **compile_times,
                     "batch_size": batch, "steps": config.sampler.num_steps,
                     "network_evaluations": 2 * config.sampler.num_steps - 1,
                     "gflop_per_image": flops / batch / 1e9,
                     "tflops_per_second": flops / per / 1e12,
                     "mfu": None if peak is None else flops / per / (peak * jax.device_count())}
        log(f"[benchmark] {tag} {name}: {batch / per:.1f} images/s (compile cold "
            f"{compile_times['compile_cold_seconds']:.1f}s, warm "
            f"{compile_times['compile_warm_seconds']:.1f}s, {flops / per / 1e12:.2f} TFLOP/s)")
    out["dg_overhead"] = (out["sampling_plain"]["images_per_second"]
                          / out["sampling_dg"]["images_per_second"])
    return out


def _score_training(config, precond, params, mesh, repeats, tag, batch):
    """EDM-loss training steps of the score network (Adam, EMA, dropout as configured)."""
    d = config.data
    tx = make_optimizer("adam", 1e-4)

    def denoise(p, x, sigma, y, key):
        return precond(p, x, sigma, y, train=True, rngs={"dropout": key})

    step_fn = make_edm_train_step(denoise, tx, ema_decay=0.999)
    own = jax.tree_util.tree_map(jax.numpy.copy, params)  # the step donates its state
    state = TrainState.create(own, tx, jax.random.PRNGKey(2), ema=True)
    rng = np.random.default_rng(0)
    b = {"images": rng.normal(size=(batch, d.resolution, d.resolution, d.channels)).astype(
        np.float32)}
    if precond.label_dim:
        b["labels"] = np.eye(precond.label_dim, dtype=np.float32)[np.arange(batch) % precond.label_dim]
    b = {k: jax.device_put(v, data_sharding(mesh)) for k, v in b.items()}
    flops = count_flops(step_fn, state, b)
    holder = {"state": replicate(state, mesh)}
    step = jax.jit(step_fn, donate_argnums=0)

    def train_once():
        holder["state"], metrics = step(holder["state"], b)
        return metrics["loss"]

    first, per = _time(train_once, repeats)
    peak = peak_flops(jax.devices()[0].device_kind, tag)
    log(f"[benchmark] {tag} score training: {batch / per:.1f} images/s "
        f"(compile {first - per:.1f}s, {flops / per / 1e12:.2f} TFLOP/s)")
    return {"images_per_second": batch / per, "compile_seconds": first - per,
            "batch_size": batch, "gflop_per_image": flops / batch / 1e9,
            "tflops_per_second": flops / per / 1e12,
            "mfu": None if peak is None else flops / per / (peak * jax.device_count())}


def _disc_training(config, disc, mesh, repeats, tag):
    d = config.data
    tx = make_optimizer("adam", 1e-4)
    state = replicate(TrainState.create(disc.trainable, tx, jax.random.PRNGKey(1)), mesh)
    step = jax.jit(make_train_step(disc.logit, tx), donate_argnums=0)
    n = config.disc.batch_size
    fake = np.zeros((n, d.resolution, d.resolution, d.channels), np.float32)
    dbatch = {"real": jax.device_put(fake, data_sharding(mesh)),
              "fake": jax.device_put(fake, data_sharding(mesh))}
    if config.disc.conditional:
        dbatch["real_labels"] = dbatch["fake_labels"] = jax.device_put(
            np.zeros(n, np.int32), data_sharding(mesh))
    holder = {"state": state}

    def train_once():
        holder["state"], metrics = step(holder["state"], dbatch)
        return metrics["loss"]

    first, per = _time(train_once, repeats)
    log(f"[benchmark] {tag} disc training: {2 * n / per:.1f} images/s")
    return {"images_per_second": 2 * n / per, "compile_seconds": first - per,
            "batch_size": 2 * n}


def _score_model(config, random_weights: bool):
    """(precond, params) of the config's EDM score model: score.arch with random weights, or
    (--weights=config) its converted checkpoint when score.source='converted'."""
    s = config.score
    if not random_weights and s.source == "converted":
        conv = load_weights(s.checkpoint, "edm", field="score.checkpoint")
        return conv.model, conv.params
    precond = edm_precond_from_kwargs(s.arch.class_name, s.arch.init_kwargs.to_dict())
    return precond, init_precond_params(precond, jax.random.PRNGKey(0))


def _discriminator(config, compute_dtype: str, random_weights: bool):
    """The config's discriminator (`discriminator_from_spec`): with random weights, its ADM
    classifier is built from disc.classifier_flags; --weights=config reads disc.classifier."""
    c, d = config.disc, config.data
    spec = dict(c.to_dict(), compute_dtype=compute_dtype)
    classifier = c_params = None
    if c.kind == "adm" and c.classifier:
        if not random_weights:
            conv = load_weights(c.classifier, "adm_classifier", field="disc.classifier",
                                flags=c.classifier_flags.to_dict())
            classifier, c_params = conv.model, conv.params
        elif not c.classifier_flags:
            raise ValueError("--weights=random: disc.classifier_flags is empty, so the "
                             f"discriminator's classifier ({c.classifier}) has no "
                             "architecture to build with random weights; set it or use "
                             "--weights=config")
    return discriminator_from_spec(spec, (d.resolution, d.resolution, d.channels), d.num_classes,
                                   jax.random.PRNGKey(1), jax.random.PRNGKey(2),
                                   classifier=classifier, classifier_params=c_params)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, workdir = FLAGS.config, pathlib.Path(FLAGS.workdir)
    for dt in FLAGS.dtypes:
        check_dtype(dt, "--dtypes")
    workdir.mkdir(parents=True, exist_ok=True)
    # A fresh persistent cache: every program compiles cold once, then warm (read back).
    cache_dir = tempfile.mkdtemp(prefix="dg_jax_bench_cache_")
    enable_compilation_cache(cache_dir, min_compile_seconds=0.0)
    try:
        _run(config, workdir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def _run(config, workdir: pathlib.Path):
    mesh = make_mesh()
    device = jax.devices()[0]
    out = {"device": device.device_kind, "platform": device.platform,
           "num_devices": jax.device_count(), "config": config_flags.get_config_filename(
               FLAGS["config"])}
    if device.platform == "cpu":
        out["note"] = CPU_NOTE
        log(f"[benchmark] {CPU_NOTE}")
    if config.pipeline == "dit_dg":
        out.update(_dit(config, mesh, FLAGS.repeats, FLAGS.weights == "random"))
        _write(workdir, out)
        return
    batch = config.sample.batch_size
    d = config.data
    shape = (batch, d.resolution, d.resolution, d.channels)
    latents = jax.device_put(jax.random.normal(jax.random.PRNGKey(0), shape), data_sharding(mesh))
    labels = None
    if d.num_classes:
        labels = jax.device_put(jnp.arange(batch) % d.num_classes, data_sharding(mesh))

    edm = config.score.family == "edm"
    random_weights = FLAGS.weights == "random"
    score_batch = FLAGS.score_train_batch or batch
    score_batch = max(jax.device_count(), score_batch - score_batch % jax.device_count())
    if edm:
        precond, params = _score_model(config, random_weights)
    per_dtype = {}
    for dt in FLAGS.dtypes:
        disc_dtype = dt if config.disc.kind == "adm" else "float32"
        disc = _discriminator(config, disc_dtype, random_weights)
        entry = {"score_compute_dtype": dt if edm else None, "disc_compute_dtype": disc_dtype}
        if edm:
            precond_dt = with_compute(precond, compute_dtype=dt, field="--dtypes")
            entry.update(_sampling(config, precond_dt, params, disc, latents,
                                   labels, FLAGS.repeats, dt))
            entry["score_training"] = _score_training(config, precond_dt, params, mesh,
                                                      FLAGS.repeats, dt, score_batch)
        entry["disc_training"] = _disc_training(config, disc, mesh, FLAGS.repeats, dt)
        per_dtype[dt] = entry
    out["compute_dtypes"] = per_dtype
    out.update({k: v for k, v in per_dtype[FLAGS.dtypes[0]].items()
                if k in ("sampling_plain", "sampling_dg", "dg_overhead", "score_training",
                         "disc_training")})
    if "float32" in per_dtype and "bfloat16" in per_dtype:
        f32, bf16 = per_dtype["float32"], per_dtype["bfloat16"]
        keys = ["disc_training"] + (["sampling_plain", "sampling_dg", "score_training"]
                                    if edm else [])
        out["bfloat16_speedup"] = {k: bf16[k]["images_per_second"] / f32[k]["images_per_second"]
                                   for k in keys}

    ib = FLAGS.inception_batch or batch
    ib = max(jax.device_count(), ib - ib % jax.device_count())
    out["inception_features"] = inception_throughput(ib, FLAGS.repeats, d.resolution)
    log(f"[benchmark] inception features: "
        f"{out['inception_features']['images_per_second']:.1f} images/s")
    _write(workdir, out)


def _write(workdir: pathlib.Path, out: dict) -> None:
    tmp = workdir / "benchmark.json.tmp"
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(workdir / "benchmark.json")  # never a half-written file
    log(f"[benchmark] wrote {workdir / 'benchmark.json'}")


def _dit(config, mesh, repeats: int, random_weights: bool) -> dict:
    """DiT-G++ (pipeline 'dit_dg') for each dtype of --dtypes: the DiT forward, DiT-G++
    sampling of latents without and with DG (`make_dit_gpp_sampler`, the config's respacing,
    CFG and DG settings) and the VAE decode, images/s at sample.batch_size, on random weights
    of the config's architectures (the SD VAE's, `SD_VAE_CONFIG`, when vae.config is empty)."""
    if not random_weights:
        raise ValueError("--weights=config is not available for a dit_dg config: the speed does "
                         "not depend on the weights; use --weights=random")
    d, c, g = config.data, config.cfg, config.dg
    diffusion = create_dit_diffusion(**config.diffusion.to_dict())
    batch = config.sample.batch_size
    sharding = data_sharding(mesh)
    per_dtype = {}
    for dt in FLAGS.dtypes:
        dit = dit_from_arch({**config.dit.arch.to_dict(), "compute_dtype": dt})
        vae = autoencoder_kl_from_config(
            config.vae.config.to_dict() or dict(SD_VAE_CONFIG, sample_size=d.resolution),
            compute_dtype=dt, where="vae.config")
        n, ch = d.resolution // vae.downsampling_factor, vae.latent_channels
        key = jax.random.PRNGKey(0)
        dit_vars = replicate(jax.jit(dit.init)(key, jnp.zeros((1, n, n, ch)),
                                               jnp.zeros((1,), jnp.int32),
                                               jnp.zeros((1,), jnp.int32)), mesh)
        vae_vars = replicate(jax.jit(vae.init)(key, jnp.zeros((1, d.resolution, d.resolution,
                                                              d.channels))), mesh)
        disc = discriminator_from_spec({**config.disc.to_dict(), "compute_dtype": dt},
                                       (n, n, ch), d.num_classes, jax.random.PRNGKey(1),
                                       jax.random.PRNGKey(2))
        disc_params = replicate(disc.trainable, mesh)
        lat = jax.device_put(jax.random.normal(key, (batch, n, n, ch)), sharding)
        lab = jax.device_put(jnp.arange(batch) % d.num_classes, sharding)
        t = jax.device_put(jnp.full((batch,), 500, jnp.int32), sharding)
        common = dict(LT_cfg=c.LT_cfg, ST_cfg=c.ST_cfg, branch_time=c.branch_time,
                      guided_channels=None if c.guided_channels == 0 else c.guided_channels)
        plain = make_dit_gpp_sampler(diffusion, dit, **common)
        guided = make_dit_gpp_sampler(diffusion, dit, logit_fn=disc.logit, dg_scale=g.scale,
                                      time_min=g.time_min, **common)
        forward = jax.jit(lambda v, x, tt, y: dit.apply(v, x, tt, y))
        decode = jax.jit(lambda v, z: decode_latents(vae, v, z))
        steps = diffusion.num_timesteps
        entry = {}
        # steps: DiT-G++ steps per sample, each a DiT call on 2 x batch rows (CFG)
        runs = (("dit_forward", lambda: forward(dit_vars, lat, t, lab), None),
                ("sampling_plain", lambda: plain(dit_vars, None, None, lat, lab, key), steps),
                ("sampling_dg", lambda: guided(dit_vars, None, disc_params, lat, lab, key),
                 steps),
                ("vae_decode", lambda: decode(vae_vars, lat), None))
        for name, fn, n_steps in runs:
            first, per = _time(fn, repeats)
            entry[name] = {"images_per_second": batch / per, "compile_seconds": first - per,
                           "batch_size": batch}
            if n_steps:
                entry[name]["steps"] = n_steps
            log(f"[benchmark] {dt} {name}: {batch / per:.2f} images/s "
                f"(first call {first:.1f}s)")
        entry["dg_overhead"] = (entry["sampling_plain"]["images_per_second"]
                                / entry["sampling_dg"]["images_per_second"])
        entry["image_resolution"] = d.resolution
        entry["latent_shape"] = [n, n, ch]
        per_dtype[dt] = entry
    out = {"dit_dg": per_dtype}
    if "float32" in per_dtype and "bfloat16" in per_dtype:
        out["bfloat16_speedup"] = {
            k: per_dtype["bfloat16"][k]["images_per_second"]
            / per_dtype["float32"][k]["images_per_second"]
            for k in ("dit_forward", "sampling_plain", "sampling_dg", "vae_decode")}
    return out


if __name__ == "__main__":
    app.run(main)
