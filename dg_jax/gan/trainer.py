"""Building one GAN (vanilla or Diffusion-GAN) from its config sections: the networks, the
initial `GANState` with its optimisers, and sampling the generator.

Training it (resume, the jitted step over the mesh, checkpoints of the whole state with p, T
and t_epl) is the experiment's: `dg_jax.experiments.diffusion_gan.train`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dg_jax import rng
from dg_jax.gan import diffusion_aug as da
from dg_jax.gan.models_dcgan import DCGANDiscriminator, DCGANGenerator
from dg_jax.gan.models_mlp import MLPDiscriminator, MLPGenerator
from dg_jax.gan.models_stylegan2 import StyleDiscriminator, StyleGenerator
from dg_jax.gan.state import GANState, gan_adam

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
    """A fresh GANState, its optimisers and the apply functions. The keys do not depend on
    whether the diffusion is enabled: a vanilla GAN and a Diffusion-GAN of one seed start from
    the same networks and draw the same training randomness."""
    t = config.train
    g, d = build_models(config.model, data_shape)
    z = jnp.zeros((1, config.model.z_dim))
    g_params = g.init(rng.key(seed, "init", "generator"), z)
    d_params = d.init(rng.key(seed, "init", "discriminator"),
                      jnp.zeros((1,) + tuple(data_shape)), jnp.zeros((1,), jnp.int32))
    g_tx = gan_adam(t.g_lr, t.b1, t.b2)
    d_tx = gan_adam(t.d_lr, t.b1, t.b2, reg_interval=t.r1_interval if t.r1_gamma > 0 else 0)
    dstate = da.init_state(rng.key(seed, "init", "diffusion_aug"), cfg)
    state = GANState.create(g_params, d_params, g_tx, d_tx, dstate, rng.key(seed, "train", "gan"))
    return state, g.apply, d.apply, g_tx, d_tx


def generate(g_apply, params, key, num: int, z_dim: int, batch: int = 5000) -> np.ndarray:
    """num generator samples from fold_in(key, i) latents in chunks of `batch`."""
    fn = jax.jit(g_apply)
    out = [np.asarray(fn(params, jax.random.normal(jax.random.fold_in(key, i), (batch, z_dim))))
           for i in range((num + batch - 1) // batch)]
    return np.concatenate(out)[:num]
