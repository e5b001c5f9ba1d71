"""Building and running one GAN training (vanilla or Diffusion-GAN) from a config section.

The shared `dg_jax.train.loop.train_loop` runs the jitted step over the mesh (batch sharded on
'data', state replicated), logs T, p, r_d and D's real/fake outputs through the metric writer,
and saves the whole `GANState` (p, T, t_epl included) with orbax; a restarted run resumes.
"""
from __future__ import annotations

import pathlib
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections

from dg_jax.checkpoint import Checkpointer
from dg_jax.errors import WorkdirError
from dg_jax.gan import diffusion_aug as da
from dg_jax.gan.losses import make_gan_train_step
from dg_jax.gan.models_dcgan import DCGANDiscriminator, DCGANGenerator
from dg_jax.gan.models_mlp import MLPDiscriminator, MLPGenerator
from dg_jax.gan.models_stylegan2 import StyleDiscriminator, StyleGenerator
from dg_jax.gan.state import GANState, gan_adam
from dg_jax.metric_writers import log, make_writer
from dg_jax.parallel import replicated
from dg_jax.train.loop import train_loop

BACKBONES = ("mlp", "dcgan", "stylegan2")


def diffusion_config(config: ml_collections.ConfigDict, enabled: bool) -> da.DiffusionConfig:
    return da.DiffusionConfig(**config.diffusion.to_dict(), enabled=enabled)


def build_models(m: ml_collections.ConfigDict, data_shape: tuple):
    """(G module, D module) for backbone m.backbone; data_shape excludes the batch axis."""
    if m.backbone == "mlp":
        return (MLPGenerator(out_dim=data_shape[-1], width=m.g_width, depth=m.g_depth),
                MLPDiscriminator(width=m.d_width, depth=m.d_depth))
    if m.backbone == "dcgan":
        return (DCGANGenerator(resolution=data_shape[0], channels=data_shape[-1], width=m.width),
                DCGANDiscriminator(width=m.width))
    if m.backbone == "stylegan2":
        return (StyleGenerator(resolution=data_shape[0], channels=data_shape[-1],
                               z_dim=m.z_dim, w_dim=m.w_dim, width=m.width,
                               mapping_layers=m.mapping_layers),
                StyleDiscriminator(width=m.width, cmap_dim=m.w_dim,
                                   mapping_layers=m.mapping_layers))
    raise ValueError(f"unknown backbone {m.backbone!r} (field 'model.backbone'); "
                     f"choose one of {list(BACKBONES)}")


def init_state(config, data_shape: tuple, cfg: da.DiffusionConfig, seed: int):
    """A fresh GANState, its optimisers and the apply functions."""
    t = config.train
    g, d = build_models(config.model, data_shape)
    key = jax.random.PRNGKey(seed)
    z = jnp.zeros((1, config.model.z_dim))
    g_params = g.init(jax.random.fold_in(key, 1), z)
    d_params = d.init(jax.random.fold_in(key, 2), jnp.zeros((1,) + tuple(data_shape)),
                      jnp.zeros((1,), jnp.int32))
    g_tx = gan_adam(t.g_lr, t.b1, t.b2)
    d_tx = gan_adam(t.d_lr, t.b1, t.b2, reg_interval=t.r1_interval if t.r1_gamma > 0 else 0)
    dstate = da.init_state(jax.random.fold_in(key, 3), cfg)
    state = GANState.create(g_params, d_params, g_tx, d_tx, dstate, jax.random.fold_in(key, 4))
    return state, g.apply, d.apply, g_tx, d_tx


def train_gan(config, workdir: pathlib.Path, name: str, data_shape: tuple, batch_fn: Callable,
              mesh, enabled: bool, *, on_segment: Optional[Callable] = None,
              segment_every: int = 0):
    """Trains (or resumes) one GAN under workdir/checkpoints/<name>; returns (state, g_apply,
    d_apply). With `segment_every`, `on_segment(state)` is called each time the step reaches a
    multiple of it (e.g. to snapshot samples for a figure)."""
    t = config.train
    cfg = diffusion_config(config, enabled)
    state, g_apply, d_apply, g_tx, d_tx = init_state(config, data_shape, cfg, config.seed)
    checkpointer = Checkpointer(workdir / "checkpoints" / name)
    state, resumed = checkpointer.restore_or(state)
    if resumed:
        expect = int(da.compute_T(state.diffusion.p, cfg.t_min, cfg.t_max)) if enabled else None
        log(f"[{name}] resumed at step {int(state.step)}: p={float(state.diffusion.p):.4f} "
            f"T={int(state.diffusion.T)}")
        if enabled and expect != int(state.diffusion.T):
            raise ValueError(f"checkpoint of {name} holds T={int(state.diffusion.T)} but p gives "
                             f"T={expect}")
    if int(state.step) > t.num_steps:
        raise WorkdirError(f"[{name}] the checkpoint is at step {int(state.step)}, beyond "
                           f"train.num_steps={t.num_steps}: set train.num_steps>="
                           f"{int(state.step)} or use a new --workdir")
    state = jax.device_put(state, replicated(mesh))
    step_fn = jax.jit(make_gan_train_step(
        g_apply, d_apply, g_tx, d_tx, z_dim=config.model.z_dim, cfg=cfg, r1_gamma=t.r1_gamma,
        r1_interval=t.r1_interval, ema_kimg=t.ema_kimg, ema_rampup=t.ema_rampup,
        batch_size=t.batch_size), donate_argnums=0)
    writer = make_writer(workdir, name, config.tensorboard)
    bounds = ([s for s in range(segment_every, t.num_steps, segment_every)] if segment_every
              else []) + [t.num_steps]
    for end in bounds:
        if int(state.step) >= end:
            continue
        state = train_loop(state, step_fn, batch_fn, num_steps=end, mesh=mesh,
                           checkpointer=checkpointer, checkpoint_every=t.checkpoint_every,
                           log_every=t.log_every, writer=writer, name=name,
                           steps_field="train.num_steps")
        if on_segment is not None:
            on_segment(state)
    checkpointer.close()
    writer.close()
    return state, g_apply, d_apply
