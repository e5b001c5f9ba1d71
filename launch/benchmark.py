"""Measures throughput of a DG image config and writes DIR/benchmark.json.

  python -m launch.benchmark --config=configs/cifar10_edm_dg.py --workdir=/tmp/bench
  python -m launch.benchmark --config=configs/cifar10_edm_dg.py:smoke --workdir=/tmp/bench_smoke

Reports, on whatever devices JAX sees (the JSON says which): EDM Heun sampling images/s with and
without DG at sample.batch_size (score model and discriminator as the config builds them, random
weights where the config has no checkpoint), the DG overhead ratio, discriminator-training
images/s, FID Inception feature images/s (random weights), and each compile time. On CPU the
numbers only show the benchmark runs; compare speeds on accelerators.
"""
import json
import pathlib
import time

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "config file (path[:variant])", lock_config=True)
flags.DEFINE_string("workdir", None, "where benchmark.json goes")
flags.DEFINE_integer("repeats", 3, "timed repetitions after the compile run")
flags.DEFINE_integer("inception_batch", 0, "Inception batch (0: sample.batch_size)")
flags.mark_flags_as_required(["config", "workdir"])


def _time(fn, repeats):
    """(compile+first run seconds, mean seconds per later run); blocks on the results."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn())
    return first, (time.perf_counter() - t0) / repeats


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dg_jax.eval.benchmark_inception import inception_throughput
    from dg_jax.metric_writers import log
    from dg_jax.parallel import data_sharding, make_mesh, replicate
    from dg_jax.pipelines import dg_images, dg_images_models as M
    from dg_jax.train.discriminator import make_train_step
    from dg_jax.train.state import TrainState, make_optimizer

    config, workdir = FLAGS.config, pathlib.Path(FLAGS.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = make_mesh()
    device = jax.devices()[0]
    out = {"device": device.device_kind, "platform": device.platform,
           "num_devices": jax.device_count(), "config": config_flags.get_config_filename(
               FLAGS["config"])}
    batch = config.sample.batch_size
    d = config.data
    shape = (batch, d.resolution, d.resolution, d.channels)
    latents = jax.device_put(jax.random.normal(jax.random.PRNGKey(0), shape), data_sharding(mesh))
    labels = None
    if d.num_classes:
        labels = jax.device_put(jnp.arange(batch) % d.num_classes, data_sharding(mesh))

    if config.score.family == "edm":
        if config.score.source == "train":
            config.unlock()
            config.score.source = "random"
        precond, params = M.build_score_model(config)
        disc = M.build_discriminator(config)
        plain = dg_images.make_sampler(config, precond, params)
        guided = dg_images.make_sampler(config, precond, params, disc.bind(disc.trainable),
                                        config.dg.weight_1st)
        for name, fn in (("sampling_plain", plain), ("sampling_dg", guided)):
            first, per = _time(lambda: fn(latents, labels), FLAGS.repeats)
            out[name] = {"images_per_second": batch / per, "compile_seconds": first - per,
                         "batch_size": batch, "steps": config.sampler.num_steps,
                         "network_evaluations": 2 * config.sampler.num_steps - 1}
            log(f"[benchmark] {name}: {batch / per:.1f} images/s (compile {first - per:.1f}s)")
        out["dg_overhead"] = (out["sampling_plain"]["images_per_second"]
                              / out["sampling_dg"]["images_per_second"])

    disc = M.build_discriminator(config)
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

    first, per = _time(train_once, FLAGS.repeats)
    out["disc_training"] = {"images_per_second": 2 * n / per, "compile_seconds": first - per,
                            "batch_size": 2 * n}
    log(f"[benchmark] disc training: {2 * n / per:.1f} images/s")

    ib = FLAGS.inception_batch or batch
    ib = max(jax.device_count(), ib - ib % jax.device_count())
    out["inception_features"] = inception_throughput(ib, FLAGS.repeats, d.resolution)
    log(f"[benchmark] inception features: "
        f"{out['inception_features']['images_per_second']:.1f} images/s")
    (workdir / "benchmark.json").write_text(json.dumps(out, indent=2))
    log(f"[benchmark] wrote {workdir / 'benchmark.json'}")


if __name__ == "__main__":
    app.run(main)
