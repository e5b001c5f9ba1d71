"""The ADM (guided-diffusion) branch of the image DG pipeline: DDPM-G++ and DDIM-G++.

A guided-diffusion UNet (converted by `launch.convert --kind=adm_unet`, or random for smoke
runs) samples with the improved-DDPM process from its flags, respaced by `sampler.respacing`
(e.g. "250" or "ddim25"); DG's gradient and optionally a noisy classifier's (classifier
guidance, `cg.classifier` converted with `--kind=adm_classifier --integer_time`) enter as
cond_fns: a mean shift for DDPM, an eps shift for DDIM.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from dg_jax import rng as streams
from dg_jax.convert.saved import load_weights
from dg_jax.diffusion.iddpm import diffusion_from_flags, model_timesteps
from dg_jax.errors import ConfigError
from dg_jax.guidance.cfg import classifier_guidance_cond_fn
from dg_jax.guidance.discriminator import dg_cond_fn, log_ratio_from_logit, sum_cond_fns
from dg_jax.models.adm_flags import unet_from_flags
from dg_jax.samplers.ddpm import ddim_sample, ddpm_sample


@dataclasses.dataclass
class AdmScore:
    module: Any
    params: Any
    flags: dict
    img_resolution: int
    img_channels: int = 3


def build_adm_score(config) -> AdmScore:
    s = config.score
    if s.source == "converted":
        conv = load_weights(s.checkpoint, "adm_unet", field="score.checkpoint",
                            flags=s.get("flags", {}) and s.flags.to_dict())
        module, params, flags = conv.model, conv.params, conv.arch["flags"]
    elif s.source == "random":
        flags = s.flags.to_dict()
        module = unet_from_flags(flags)
        size = module.image_size
        y = jnp.zeros((1,), jnp.int32) if module.num_classes else None
        params = module.init(streams.key(config.seed, "init", "score"), jnp.zeros((1, size, size, 3)),
                             jnp.zeros((1,), jnp.int32), y)
    else:
        raise ConfigError(f"score.source {s.source!r} is not available for score.family='adm'; "
                         "use 'converted' (or 'random' for smoke runs)")
    if module.image_size != config.data.resolution:
        raise ConfigError(f"the ADM UNet is {module.image_size}x{module.image_size} but "
                         f"data.resolution is {config.data.resolution}")
    impl = s.get("attention_impl", "auto")  # models/attention.py
    if impl != module.attention_impl:
        module = module.clone(attention_impl=impl)
    return AdmScore(module, params, dict(flags), module.image_size)


def _classifier_cond(config):
    cg = config.cg
    if not cg.scale:
        return None
    conv = load_weights(cg.classifier, "adm_classifier", field="cg.classifier",
                        require={"dg_time": False})  # a noisy classifier: integer timesteps
    return classifier_guidance_cond_fn(lambda x, t: conv.model.apply(conv.params, x, t), cg.scale)


def make_adm_sampler(config, score: AdmScore, logit_fn=None, dg_weight: float = 0.0):
    s, d = config.sampler, config.dg
    diffusion = diffusion_from_flags(score.flags, timestep_respacing=s.respacing)
    dg = None
    if logit_fn is not None and dg_weight:
        dg = dg_cond_fn(logit_fn, dg_weight, time_min=d.time_min, time_max=d.time_max,
                        clip_probability=d.clip_probability)
    cond = sum_cond_fns(dg, _classifier_cond(config))
    model_fn = lambda x, t, y: score.module.apply(score.params, x, t, y)  # noqa: E731
    sampler = ddim_sample if s.respacing.startswith("ddim") else ddpm_sample

    def run(latents, labels, noise_key, return_log_ratio=False):
        y = labels if score.module.num_classes else None
        out = sampler(diffusion, model_fn, latents.astype(jnp.float32), y=y, rng=noise_key,
                      cond_fn=cond, return_trajectory=return_log_ratio)
        if not return_log_ratio:
            return out
        x, traj = out
        states = jnp.concatenate([latents[None], traj[:-1]], axis=0)  # x_t fed at each step
        t_model = model_timesteps(diffusion, jnp.arange(diffusion.num_timesteps - 1, -1, -1))
        ratios = jax.vmap(lambda xt, t: log_ratio_from_logit(
            logit_fn(xt, jnp.full(xt.shape[:1], t / 999.0), labels), d.clip_probability))(
                states, jnp.asarray(t_model, jnp.float32))
        return x, ratios

    return jax.jit(run, static_argnums=3)
