"""Diffusion-GAN experiments (configs/toy25_diffusion_gan.py, digits_diffusion_gan.py,
cifar10_diffusion_stylegan2.py): a vanilla GAN and a Diffusion-GAN with the same networks,
steps and seeds, each resumable from the workdir (checkpoints/<run>).

`config.experiment` picks the data: 'toy25' (here), 'digits' and 'cifar10'
(`dg_jax.pipelines.diffusion_gan_images`).
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dg_jax.checkpoint import guard_config, write_json
from dg_jax.gan import toy25
from dg_jax.gan.trainer import build_models, train_gan
from dg_jax.metric_writers import log
from dg_jax.parallel import check_divisible, make_mesh, process_slice

RUNS = ("vanilla", "diffusion_gan")
RESUME_SAFE_FIELDS = ("train.log_every", "train.checkpoint_every", "train.num_steps",
                      "tensorboard", "eval.num_samples", "runs")


def generate(g_apply, params, key, num: int, z_dim: int, batch: int = 5000) -> np.ndarray:
    """num generator samples from fold_in(key, i) latents in chunks of `batch`."""
    fn = jax.jit(g_apply)
    out = [np.asarray(fn(params, jax.random.normal(jax.random.fold_in(key, i), (batch, z_dim))))
           for i in range((num + batch - 1) // batch)]
    return np.concatenate(out)[:num]


def run_toy25(config: ml_collections.ConfigDict, workdir: pathlib.Path, mesh) -> dict:
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
            rng = np.random.default_rng([config.seed, step])
            return {"real": toy25.sample(rng, config.train.batch_size, means, d.std)[rows] * scale}

        def on_segment(state, _dir=snap_dir):
            step = int(state.step)
            x = generate(g_model.apply, state.ema_params, jax.random.PRNGKey(7), 2000,
                         config.model.z_dim, 2000) / scale
            lim = float(np.abs(means).max() + 2.0)
            u = np.linspace(-lim, lim, 64, dtype=np.float32)
            grid = np.stack(np.meshgrid(u, u, indexing="xy"), -1).reshape(-1, 2)
            logits = np.asarray(jax.jit(d_model.apply)(
                state.d_params, jnp.asarray(grid * scale), jnp.zeros((len(grid),), jnp.int32)))
            np.savez(_dir / f"step_{step:07d}.npz", step=step, samples=x, d_logits=logits.reshape(64, 64),
                     lim=lim, T=int(state.diffusion.T), p=float(state.diffusion.p))

        state, g_apply, _ = train_gan(config, workdir, name, (2,), batch_fn, mesh, enabled,
                                      on_segment=on_segment,
                                      segment_every=config.eval.snapshot_every)
        x = generate(g_apply, state.ema_params, jax.random.PRNGKey(config.seed + 99),
                     config.eval.num_samples, config.model.z_dim) / scale
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
    write_json(workdir / "results.json", results)
    if jax.process_index() == 0:
        from dg_jax.pipelines.diffusion_gan_plot import plot_toy25

        plot_toy25(workdir / "toy25.png", snapshots, config.runs, means)
        log(f"[done] wrote {workdir / 'results.json'} and {workdir / 'toy25.png'}")
    return results


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mesh = make_mesh()
    check_divisible(config.train.batch_size, mesh, "train.batch_size")
    for name in config.runs:
        if name not in RUNS:
            raise ValueError(f"unknown run {name!r} (field 'runs'); choose from {list(RUNS)}")
    guard_config(workdir, config.to_dict(), "diffusion_gan", ignore=RESUME_SAFE_FIELDS)
    if config.experiment == "toy25":
        return run_toy25(config, workdir, mesh)
    if config.experiment in ("digits", "cifar10"):
        from dg_jax.pipelines.diffusion_gan_images import run_images

        return run_images(config, workdir, mesh)
    raise ValueError(f"unknown experiment {config.experiment!r} (field 'experiment'); "
                     "choose one of ['toy25', 'digits', 'cifar10']")
