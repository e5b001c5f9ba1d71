"""Diffusion-GAN experiments (configs/toy25_diffusion_gan.py, digits_diffusion_gan.py,
cifar10_diffusion_stylegan2.py): a vanilla GAN and a Diffusion-GAN with the same networks,
steps and seeds, each resumable from the workdir (checkpoints/<run>).

`config.experiment` picks the data: 'toy25' (here), 'digits' and 'cifar10'
(`dg_jax.experiments.diffusion_gan.images`), 'fashion_mnist' (limited-data subsets,
`dg_jax.experiments.diffusion_gan.fashion`: one run per subset size, named `<run>_<n>`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dg_jax.checkpoint import write_json
from dg_jax.errors import ConfigError, check_finite, check_finite_array
from dg_jax.experiments.diffusion_gan.fashion import run_fashion, run_names
from dg_jax.experiments.diffusion_gan.images import run_images
from dg_jax.experiments.diffusion_gan.train import train_gan
from dg_jax.experiments.kit.setup import Run, setup_run
from dg_jax.gan import toy25
from dg_jax.gan.trainer import BACKBONES, build_models, generate
from dg_jax.metric_writers import log
from dg_jax.parallel import check_divisible, process_slice
from dg_jax.validate import check_choice, check_positive
from dg_jax.workdir import Stage

RUNS = ("vanilla", "diffusion_gan")
EXPERIMENTS = ("toy25", "digits", "cifar10", "fashion_mnist")
RESUME_SAFE_FIELDS = ("train.log_every", "train.checkpoint_every", "tensorboard", "runs")


def stages(config) -> tuple:
    """One training stage per GAN run (vanilla ignores the diffusion fields) and the evaluation
    that reads them all."""
    common = ("seed", "experiment", "data", "model", "train")
    names = run_names(config) if config.experiment == "fashion_mnist" else tuple(config.runs)
    runs = tuple(Stage(name, fields=common + (
        ("diffusion",) if name.startswith("diffusion_gan") else ()), trains="train.num_steps",
        outputs=(f"checkpoints/{name}", name)) for name in names)
    evaluate = Stage("evaluate", fields=("seed", "eval"), after=names,
                     outputs=("results.json", "toy25.png", "training.png") + tuple(
                         f"samples_{n}.png" for n in names) + tuple(
                         f"nearest_{n}.png" for n in config.data.get("subset_sizes", ())))
    return runs + (evaluate,)


def validate(config, mesh) -> None:
    check_choice(config.experiment, EXPERIMENTS, "experiment")
    for name in config.runs:
        check_choice(name, RUNS, "runs")
    if not config.runs:
        raise ConfigError("runs is empty; choose from " + str(list(RUNS)))
    check_positive(config, ("train.num_steps", "train.log_every", "train.checkpoint_every",
                            "eval.num_samples", "model.z_dim"))
    check_divisible(config.train.batch_size, mesh, "train.batch_size")
    check_choice(config.model.backbone, BACKBONES, "model.backbone")
    d = config.diffusion
    if not 1 <= d.t_min <= d.t_max:
        raise ConfigError(f"diffusion.t_min={d.t_min} and diffusion.t_max={d.t_max} must satisfy "
                          "1 <= t_min <= t_max")
    if config.experiment == "fashion_mnist":
        sizes = list(config.data.get("subset_sizes", ()))
        if not sizes or any(not isinstance(n, int) or n < 10 for n in sizes):
            raise ConfigError(f"data.subset_sizes={sizes} must list training-subset sizes "
                              "(integers >= 10, multiples of the 10 classes), e.g. [500, 2000]")
        if config.data.resolution not in (28, 32):
            raise ConfigError(f"data.resolution={config.data.resolution}: Fashion-MNIST is 28, "
                              "or 32 zero-padded (the DCGAN and StyleGAN2 pairs need 32)")
        check_positive(config, ("eval.curve_every", "eval.curve_samples"))
    for field in ("train.g_lr", "train.d_lr", "diffusion.ada_kimg"):
        section, name = field.split(".")
        if not config[section][name] > 0:
            raise ConfigError(f"{field}={config[section][name]} must be positive")


def run_toy25(run: Run) -> dict:
    config, workdir, wd = run.config, run.workdir, run.wd
    d = config.data
    means = toy25.grid_means(d.grid, d.spacing)
    scale = d.scale  # the networks see data * scale (in [-1, 1])
    rows = process_slice(config.train.batch_size)
    results, snapshots = {}, {}
    g_model, d_model = build_models(config.model, (2,))
    for name in config.runs:
        enabled = name == "diffusion_gan"
        snap_dir = workdir / name / "snapshots"
        snap_dir.mkdir(parents=True, exist_ok=True)

        def batch_fn(step, _name=name):
            rng = run.streams.numpy("data", step)  # the same batches for both runs
            return {"real": toy25.sample(rng, config.train.batch_size, means, d.std)[rows] * scale}

        def on_segment(state, _dir=snap_dir):
            step = int(state.step)
            x = generate(g_model.apply, state.g.ema_params, run.streams.key("eval", "snapshot"), 2000,
                         config.model.z_dim, 2000) / scale
            lim = float(np.abs(means).max() + 2.0)
            u = np.linspace(-lim, lim, 64, dtype=np.float32)
            grid = np.stack(np.meshgrid(u, u, indexing="xy"), -1).reshape(-1, 2)
            logits = np.asarray(jax.jit(d_model.apply)(
                state.d.params, jnp.asarray(grid * scale), jnp.zeros((len(grid),), jnp.int32)))
            np.savez(_dir / f"step_{step:07d}.npz", step=step, samples=x, d_logits=logits.reshape(64, 64),
                     lim=lim, T=int(state.diffusion.T), p=float(state.diffusion.p))

        wd.start(name)
        state, g_apply, _ = train_gan(run, name, (2,), batch_fn, enabled, on_segment=on_segment,
                                      segment_every=config.eval.snapshot_every)
        wd.finish(name)
        x = generate(g_apply, state.g.ema_params, run.streams.key("sample"),
                     config.eval.num_samples, config.model.z_dim) / scale
        check_finite_array(x, "evaluate", f"{name} generator samples")
        m = toy25.mode_metrics(x, means, d.std)
        results[name] = {"modes_covered": m["modes_covered"],
                         "high_quality_fraction": m["high_quality_fraction"],
                         "final_T": int(state.diffusion.T) if enabled else 0,
                         "final_p": float(state.diffusion.p), "mode_counts": m["mode_counts"]}
        log(f"[eval] {name}: modes_covered={m['modes_covered']}/25 "
            f"high_quality_fraction={m['high_quality_fraction']:.4f} "
            f"final_T={results[name]['final_T']}")
        snapshots[name] = sorted(snap_dir.glob("step_*.npz"))
        snapshots[name + "_final"] = x
    wd.start("evaluate")
    check_finite(results, "evaluate")
    write_json(workdir / "results.json", results)
    if jax.process_index() == 0:
        # matplotlib only when plotting (plot.py imports it)
        from dg_jax.experiments.diffusion_gan.plot import plot_toy25  # noqa: PLC0415

        plot_toy25(workdir / "toy25.png", snapshots, config.runs, means)
        log(f"[done] wrote {workdir / 'results.json'} and {workdir / 'toy25.png'}")
    wd.finish("evaluate")
    return results


def run(config: ml_collections.ConfigDict, workdir: str, source: str = "") -> dict:
    r = setup_run(config, workdir, "diffusion_gan", stages(config), validate=validate,
                  ignore=RESUME_SAFE_FIELDS, source=source)
    r.wd.open()
    if config.experiment == "toy25":
        return run_toy25(r)
    return run_fashion(r) if config.experiment == "fashion_mnist" else run_images(r)
