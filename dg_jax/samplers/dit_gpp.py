"""DiT-G++ (DG_imagenet `sample.py`): DiT's ancestral DDPM sampling with two-stage classifier-free
guidance and latent Discriminator Guidance.

The official loop is guided-diffusion's `p_sample_loop` over `model.forward_with_dg` with the DG
`cond_fn` and `clip_denoised=False`, on the doubled batch cat(z, z) with labels cat(y, null); it
keeps the first half. Per step, at original timestep t:
  out = forward_with_dg(x, t, y)           eps channels [:3] guided (DiT's quirk), the rest raw
  mean, log_var = the learned-range posterior of `out` (no x0 clipping)
  mean += exp(log_var) * cond_fn(x, t, y)  DG: dg_scale grad_x log(d/(1-d)) while t > time_min
  x = mean + [t != 0] exp(log_var / 2) z
Only the conditional rows x[:B] enter `forward_with_dg` and the cond_fn, and the kept rows' mean,
variance, guidance and noise are all functions of x[:B], so the null rows never reach the kept
rows: this sampler runs on the B conditional rows only (half the work) and returns exactly the
official samples' first half, given the first half of the official per-step noise.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax

from dg_jax.diffusion.iddpm import DiscreteDiffusion
from dg_jax.guidance.discriminator import LOGIT_CLIP_P, latent_dg_cond_fn
from dg_jax.guidance.dit_cfg import DIT_GUIDED_CHANNELS, dit_cfg_model_fn, two_stage_scale
from dg_jax.models.sd_vae import decode_latents
from dg_jax.samplers.ddpm import ddpm_sample


def dit_gpp_sample(diffusion: DiscreteDiffusion, dit_fn: Callable, latents, y, *,
                   null_label: int, LT_cfg: float = 1.0, ST_cfg: float = 1.0,
                   branch_time: float = 0.0, cond_fn: Optional[Callable] = None, rng=None,
                   step_noise=None, clip_denoised: bool = False,
                   guided_channels: Optional[int] = DIT_GUIDED_CHANNELS,
                   channel_axis: int = -1, return_trajectory: bool = False):
    """DiT-G++ samples (latents before the VAE decode) of the B conditional rows.

    dit_fn(x, t, y) -> the raw DiT output [eps, variance values] (e.g. a bound `DiT`), called on
    2B rows per step (cat(x, x), labels cat(y, null_label)); `diffusion` is the respaced process
    (`create_gaussian_diffusion(..., timestep_respacing=...)`, learned-range variances); the
    model and `cond_fn` see original timesteps. CFG scale: LT_cfg while t > branch_time, else
    ST_cfg (`two_stage_scale`; LT_cfg = ST_cfg = 1 is the conditional model). cond_fn(x, t, y)
    on B rows, e.g. `latent_dg_cond_fn(disc.bind(params), dg_scale, time_min)`; None for no DG.
    Noise: `rng`, or `step_noise` of shape (S,) + latents.shape consumed as step_noise[k] at
    step k (the official draws' first half; the last one is masked), as `ddpm_sample`.
    """
    model_fn = dit_cfg_model_fn(dit_fn, two_stage_scale(LT_cfg, ST_cfg, branch_time), null_label,
                                guided_channels=guided_channels,
                                learned_variance=diffusion.learns_variance,
                                channel_axis=channel_axis)
    return ddpm_sample(diffusion, model_fn, latents, y=y, rng=rng, step_noise=step_noise,
                       clip_denoised=clip_denoised, cond_fn=cond_fn, channel_axis=channel_axis,
                       return_trajectory=return_trajectory)


def make_dit_gpp_sampler(diffusion: DiscreteDiffusion, dit, *, vae=None,
                         logit_fn: Optional[Callable] = None, dg_scale: float = 0.0,
                         time_min: int = 0, LT_cfg: float = 1.0, ST_cfg: float = 1.0,
                         branch_time: float = 0.0,
                         guided_channels: Optional[int] = DIT_GUIDED_CHANNELS,
                         d_clip=(LOGIT_CLIP_P, 1.0 - LOGIT_CLIP_P)) -> Callable:
    """jit(dit_vars, vae_vars, disc_params, latents, labels, noise_key) -> DiT-G++ samples.

    `dit` is a `DiT` module (its null label is `dit.num_classes`); with `vae` (an
    `AutoencoderKL`) the latents are decoded to images, else returned (vae_vars unused, pass
    None). DG when `logit_fn(disc_params, x, tau, y)` is given and dg_scale > 0
    (`latent_dg_cond_fn`, while t > time_min), else CFG alone (disc_params unused). Every
    parameter tree is an argument, so none is baked into the compiled program."""
    use_dg = logit_fn is not None and dg_scale > 0

    def run(dit_vars, vae_vars, disc_params, latents, labels, noise_key):
        cond_fn = None
        if use_dg:
            cond_fn = latent_dg_cond_fn(lambda x, tau, y: logit_fn(disc_params, x, tau, y),
                                        dg_scale, int(time_min), d_clip=d_clip)
        z = dit_gpp_sample(diffusion, lambda x, t, y: dit.apply(dit_vars, x, t, y), latents,
                           labels, null_label=dit.num_classes, LT_cfg=LT_cfg, ST_cfg=ST_cfg,
                           branch_time=branch_time, cond_fn=cond_fn, rng=noise_key,
                           guided_channels=guided_channels)
        return z if vae is None else decode_latents(vae, vae_vars, z)

    return jax.jit(run)
