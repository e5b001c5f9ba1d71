"""Parity handlers for Diffusion-GAN's adaptive diffusion (`dg_jax.gan.diffusion_aug`).

`diffusion_gan_adaptive`: the adaptive controller (p, T) after each update for a given sequence
of r_d statistics, from p = 0. The official code holds p as a Python float, so the update runs
here under `jax.enable_x64(True)` (the same `update_p` / `compute_T` training uses in
float32). `diffusion_gan_q_sample`: the re-spread linear schedule and `q_sample` with given eps.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.gan import diffusion_aug as da


def _require(case: dict, section: str, fields: tuple[str, ...]) -> dict:
    block = case.get(section)
    if not isinstance(block, dict):
        raise ValueError(f"case {case.get('name')!r}: needs a {section!r} object with "
                         f"{list(fields)}")
    missing = [f for f in fields if f not in block]
    if missing:
        raise ValueError(f"case {case.get('name')!r}: {section} lacks {missing}")
    return block


def run_diffusion_gan_adaptive(case: dict, root: pathlib.Path) -> dict:
    """p and T after each adaptive update, starting from p = 0, for io 'r_d'."""
    c = _require(case, "config", ("t_min", "t_max", "target", "batch_size", "ada_interval",
                                  "ada_kimg"))
    cfg = da.DiffusionConfig(t_min=int(c["t_min"]), t_max=int(c["t_max"]),
                             d_target=float(c["target"]), ada_interval=int(c["ada_interval"]),
                             ada_kimg=float(c["ada_kimg"]))
    io = np.load(root / case["io"])
    batch_size = int(c["batch_size"])
    with jax.enable_x64(True):
        def step(p, r_d):
            p = da.update_p(p, r_d, cfg, batch_size)
            return p, (p, da.compute_T(p, cfg.t_min, cfg.t_max))

        _, (p, T) = jax.jit(lambda r: jax.lax.scan(step, jnp.zeros((), jnp.float64), r))(
            jnp.asarray(io["r_d"], jnp.float64))
        p, T = np.asarray(p), np.asarray(T)
    return {"p": (p, io["p"]), "T": (T, io["T"])}


def run_diffusion_gan_q_sample(case: dict, root: pathlib.Path) -> dict:
    """x_t = q_sample(x0, t, eps) at the case's T, and the two sqrt tables (T + 1 entries)."""
    d = _require(case, "diffusion", ("beta_schedule", "beta_start", "beta_end", "T",
                                     "noise_std"))
    if d["beta_schedule"] != "linear":
        raise ValueError(f"case {case.get('name')!r}: beta_schedule {d['beta_schedule']!r}; "
                         "Diffusion-GAN's diffusion here is 'linear' only")
    T = int(d["T"])
    cfg = da.DiffusionConfig(beta_start=float(d["beta_start"]), beta_end=float(d["beta_end"]),
                             t_min=1, t_max=T, noise_std=float(d["noise_std"]))
    io = np.load(root / case["io"])
    t = jnp.asarray(io["t"], jnp.int32)
    if int(t.min()) < 0 or int(t.max()) > T:
        raise ValueError(f"case {case.get('name')!r}: io 't' outside [0, {T}]")

    @jax.jit
    def compute(x0, t, eps):
        return da.q_sample(x0, t, T, eps, cfg), da.schedule(T, cfg)

    x_t, (sqrt_abar, sqrt_one_minus) = compute(jnp.asarray(io["x0"], jnp.float32), t,
                                               jnp.asarray(io["eps"], jnp.float32))
    out = {"x_t": (np.asarray(x_t), io["x_t"])}
    for key, value in (("alphas_bar_sqrt", sqrt_abar), ("one_minus_alphas_bar_sqrt",
                                                        sqrt_one_minus)):
        if key in io.files:
            out[key] = (np.asarray(value), io[key])
    return out
