"""Building DiT-G++'s networks from its config: the SD VAE, the DiT and the latent discriminator.

The DiT and the discriminator live in latent space: `latent_view(config)` is the config with
data.resolution / data.channels set to the latent grid (resolution / the VAE's downsampling
factor, the VAE's latent channels), so the image pipeline's builders
(`kit.discriminators.build_discriminator`, `load_pretrained_discriminator`) and the sampling
helpers (`kit.sample_shards.latents_and_labels`) serve latents unchanged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from dg_jax import rng
from dg_jax.convert.dit import dit_from_arch
from dg_jax.convert.saved import load_weights
from dg_jax.errors import ConfigError
from dg_jax.models.sd_vae import AutoencoderKL, autoencoder_kl_from_config

SOURCES = ("converted", "random")


def build_vae(config) -> tuple[AutoencoderKL, dict]:
    """(AutoencoderKL, variables): vae.checkpoint (a diffusers folder such as
    stabilityai/sd-vae-ft-ema, or its launch.convert output) with vae.source='converted', or
    vae.config's architecture with random weights (vae.source='random', smoke runs)."""
    v, d = config.vae, config.data
    if v.source == "converted":
        conv = load_weights(v.checkpoint, "sd_vae", field="vae.checkpoint")
        vae, variables = conv.model, conv.params
    elif v.source == "random":
        vae = autoencoder_kl_from_config(v.config.to_dict(), where="vae.config")
        variables = None
    else:
        raise ConfigError(f"vae.source={v.source!r}; choose one of {list(SOURCES)}")
    vae = vae.clone(compute_dtype=v.compute_dtype, attention_impl=v.attention_impl)
    factor = vae.downsampling_factor
    if d.resolution % factor:
        raise ConfigError(f"data.resolution={d.resolution} is not a multiple of the VAE's "
                          f"downsampling factor {factor}")
    if vae.in_channels != d.channels:
        raise ConfigError(f"the VAE takes {vae.in_channels}-channel images but data.channels is "
                          f"{d.channels}")
    if variables is None:
        variables = vae.init(rng.key(config.seed, "init", "vae"),
                             jnp.zeros((1, d.resolution, d.resolution, d.channels)))
    return vae, variables


def latent_view(config, vae: AutoencoderKL) -> ml_collections.ConfigDict:
    """The config with data.resolution / data.channels of the latent grid of `vae`."""
    out = ml_collections.ConfigDict(config.to_dict())
    out.data.resolution = config.data.resolution // vae.downsampling_factor
    out.data.channels = vae.latent_channels
    return out


def build_dit(config, latent_config) -> tuple[object, dict]:
    """(DiT, variables): dit.checkpoint (a released DiT .pt, a train.py checkpoint's dit.entry,
    or a launch.convert folder) with dit.arch as its architecture, or dit.arch with random
    weights (dit.source='random'). Checked against the latent grid and data.num_classes; CFG
    needs the null label (class_dropout_prob > 0) and DiT-G++'s sampler learned sigmas."""
    t, d = config.dit, latent_config.data
    numerics = {"compute_dtype": t.compute_dtype, "attention_impl": t.attention_impl}
    arch = {**t.arch.to_dict(), **numerics}
    if t.source == "converted":
        conv = load_weights(t.checkpoint, "dit", field="dit.checkpoint", flags=arch)
        module, variables = conv.model, conv.params
        module = module.clone(**numerics)
    elif t.source == "random":
        try:
            module = dit_from_arch(arch)
        except ValueError as err:
            raise ConfigError(f"dit.arch: {err}") from None
        variables = None
    else:
        raise ConfigError(f"dit.source={t.source!r}; choose one of {list(SOURCES)}")
    if module.input_size != d.resolution or module.in_channels != d.channels:
        raise ConfigError(f"the DiT takes {module.input_size}x{module.input_size}x"
                          f"{module.in_channels} latents but the VAE gives {d.resolution}x"
                          f"{d.resolution}x{d.channels} (data.resolution / the VAE's factor): "
                          "set dit.arch.input_size / in_channels")
    if module.num_classes != config.data.num_classes:
        raise ConfigError(f"the DiT has {module.num_classes} classes but data.num_classes is "
                          f"{config.data.num_classes}")
    if not module.class_dropout_prob > 0:
        raise ConfigError("dit.arch.class_dropout_prob must be > 0: classifier-free guidance "
                          "needs the DiT's null label")
    if not module.learn_sigma:
        raise ConfigError("dit.arch.learn_sigma must be True: DiT-G++ samples with DiT's "
                          "learned-range variances")
    if variables is None:
        n = d.resolution
        variables = module.init(rng.key(config.seed, "init", "dit"), jnp.zeros((1, n, n,
                                                                                d.channels)),
                                jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32))
        variables = jax.device_get(variables)
    return module, variables
