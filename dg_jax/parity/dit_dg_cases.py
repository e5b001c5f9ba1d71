"""Parity handlers for DiT-G++'s Discriminator Guidance (DG_imagenet `sample.py`).

Each `run_<kind>(case, root)` reads its files, architecture flags and settings from the case,
runs dg_jax, and returns {name: (actual, expected)} in the fixture's NCHW layout.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.convert.dit import load_dit
from dg_jax.diffusion.iddpm import create_dit_diffusion
from dg_jax.guidance.discriminator import LOGIT_CLIP_P, latent_dg_cond_fn
from dg_jax.parity.adm_cases import _discriminator, _nchw, _nhwc
from dg_jax.samplers.dit_gpp import dit_gpp_sample

GUIDANCE_SETTINGS = ("LT_cfg", "ST_cfg", "branch_time", "dg_scale")


def _d_clip(case: dict) -> tuple[float, float]:
    return tuple(float(v) for v in case.get("d_clip", (LOGIT_CLIP_P, 1.0 - LOGIT_CLIP_P)))


def _latent_dg_logit_fn(case: dict, root: pathlib.Path):
    disc, params = _discriminator(case, root, "discriminator", "discriminator_arch")
    return disc.bind(params)


def run_dit_dg_cond_fn(case: dict, root: pathlib.Path) -> dict:
    """`sample.py`'s cond_fn(x[k], t[k], y) for each call k, on the official doubled batch: the
    first N/2 rows are evaluated and the gradient is returned for both halves."""
    io = np.load(root / case["io"])
    x, t, y = np.asarray(io["x"], np.float32), np.asarray(io["t"]), jnp.asarray(io["y"])
    n = x.shape[1]
    if n % 2:
        raise ValueError(f"dit_dg_cond_fn needs the doubled batch (an even N), got N={n}")
    cond_fn = latent_dg_cond_fn(_latent_dg_logit_fn(case, root), float(case["dg_scale"]),
                                int(case["time_min"]), d_clip=_d_clip(case), cond_rows=n // 2)
    fn = jax.jit(cond_fn)
    grads = np.stack([_nchw(fn(_nhwc(x[k]), jnp.asarray(t[k]), y)) for k in range(len(x))])
    return {"grad": (grads, io["grad"])}


def run_dit_dg_sampler(case: dict, root: pathlib.Path) -> dict:
    """DiT-G++ `sample.py`: `p_sample_loop` over `forward_with_dg` with the DG cond_fn on the
    case's respaced `diffusion`, one expected array per `variants` entry (its guidance settings
    over the case's). The official loop runs on 2B rows (latents cat(z, z), labels cat(y, null))
    and keeps rows [:B]; the null rows never reach them (`dg_jax.samplers.dit_gpp`), so this runs
    `dit_gpp_sample` on the B conditional rows with the first half of the per-step `noise`."""
    sampler = case.get("sampler", "p_sample_loop")
    if sampler != "p_sample_loop":
        raise ValueError(f"dit_dg_sampler: sampler {sampler!r} is not supported "
                         "(only 'p_sample_loop')")
    io = np.load(root / case["io"])
    diffusion = create_dit_diffusion(**case["diffusion"])
    used = np.asarray(diffusion.timestep_map)[::-1]
    if "timesteps" in io.files and not np.array_equal(used, np.asarray(io["timesteps"])):
        raise ValueError(f"the respaced process uses timesteps {used.tolist()}, the fixture "
                         f"{np.asarray(io['timesteps']).tolist()}")
    module, variables = load_dit(root / case["checkpoint"], case["arch"])
    logit_fn = _latent_dg_logit_fn(case, root)
    latents, y, noise = np.asarray(io["latents"]), np.asarray(io["y"]), np.asarray(io["noise"])
    n = latents.shape[0]
    if n % 2 or noise.shape[1] != n:
        raise ValueError(f"dit_dg_sampler needs the doubled batch: latents {latents.shape}, "
                         f"noise {noise.shape}")
    b = n // 2
    z = _nhwc(np.asarray(latents[:b], np.float32))
    labels = jnp.asarray(y[:b])
    step_noise = jnp.asarray(np.asarray(noise[:, :b], np.float32).transpose(0, 1, 3, 4, 2))
    dit_fn = lambda x, t, lab: module.apply(variables, x, t, lab)  # noqa: E731
    time_min, d_clip = int(case["time_min"]), _d_clip(case)
    clip_denoised = bool(case.get("clip_denoised", False))

    @jax.jit
    def sample(lt_cfg, st_cfg, branch_time, dg_scale):
        cond_fn = latent_dg_cond_fn(logit_fn, dg_scale, time_min, d_clip=d_clip)
        return dit_gpp_sample(diffusion, dit_fn, z, labels, null_label=module.num_classes,
                              LT_cfg=lt_cfg, ST_cfg=st_cfg, branch_time=branch_time,
                              cond_fn=cond_fn, step_noise=step_noise,
                              clip_denoised=clip_denoised)

    outputs = {}
    for name, variant in case["variants"].items():
        settings = {k: variant.get(k, case.get(k)) for k in GUIDANCE_SETTINGS}
        args = [np.float32(settings[k]) for k in GUIDANCE_SETTINGS]
        outputs[name] = (_nchw(sample(*args)), io[name])
    return outputs
