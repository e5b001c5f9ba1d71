"""Parity handlers for Stable Diffusion's VAE (diffusers `AutoencoderKL`).

Each `run_<kind>(case, root)` builds the VAE from the case's `config` (the constructor
arguments; the checkpoint folder's config.json when the case has none), loads the weights of
the case's `checkpoint` folder, runs dg_jax in float32 and returns {name: (actual, expected)} in
the fixture's NCHW layout. `sd_vae_decode` latents are already divided by `scaling_factor`
(`sample.py`: vae.decode(samples / 0.18215)) and `sd_vae_encode` outputs are unscaled, so the
scaling factor only goes into the module's record here.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.convert.sd_vae import load_sd_vae


def _nhwc(a) -> jnp.ndarray:
    return jnp.asarray(np.asarray(a, np.float32).transpose(0, 2, 3, 1))


def _nchw(a) -> np.ndarray:
    return np.asarray(a).transpose(0, 3, 1, 2)


def _vae(case: dict, root: pathlib.Path):
    config = case.get("config")
    if config is not None and "scaling_factor" in case:
        config = {**config, "scaling_factor": case["scaling_factor"]}
    return load_sd_vae(root / case["checkpoint"], config=config)


def run_sd_vae_encode(case: dict, root: pathlib.Path) -> dict:
    """AutoencoderKL.encode(images).latent_dist: mean and std (unscaled)."""
    io = np.load(root / case["io"])
    vae, variables = _vae(case, root)
    mean, std = jax.jit(lambda v, x: vae.apply(v, x, method="encode"))(variables,
                                                                       _nhwc(io["images"]))
    return {"mean": (_nchw(mean), io["mean"]), "std": (_nchw(std), io["std"])}


def run_sd_vae_decode(case: dict, root: pathlib.Path) -> dict:
    """AutoencoderKL.decode(latents).sample on latents already divided by scaling_factor."""
    io = np.load(root / case["io"])
    vae, variables = _vae(case, root)
    sample = jax.jit(lambda v, z: vae.apply(v, z, method="decode"))(variables,
                                                                    _nhwc(io["latents"]))
    return {"sample": (_nchw(sample), io["sample"])}
