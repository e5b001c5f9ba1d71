"""Parity handlers for improved-DDPM (guided-diffusion) losses and sampling.

Each `run_<kind>(case, root)` reads the checkpoint(s), guided-diffusion's model-and-diffusion
flags (`arch`) and its sampler settings from the case, runs dg_jax, and returns
{name: (actual, expected)} in the fixture's NCHW layout.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.convert.adm import load_adm_unet, load_encoder_kwargs
from dg_jax.diffusion.iddpm import diffusion_from_flags, p_mean_variance, q_sample
from dg_jax.diffusion.iddpm_losses import training_losses
from dg_jax.guidance.cfg import classifier_guidance_cond_fn
from dg_jax.samplers.ddpm import ddim_sample


def _nhwc(a, dtype=jnp.float32) -> jnp.ndarray:
    return jnp.asarray(np.asarray(a).transpose(0, 2, 3, 1), dtype)


def _nchw(a) -> np.ndarray:
    return np.asarray(a).transpose(0, 3, 1, 2)


def _unet(case: dict, root: pathlib.Path, io):
    """The UNet as model_fn(x, t_model) with the io's labels bound when it is conditional."""
    module, variables = load_adm_unet(root / case["checkpoint"], case["arch"])
    y = None
    if module.num_classes is not None:
        if "y" not in io.files:
            raise ValueError(f"case {case.get('name')!r}: class-conditional UNet but io has no 'y'")
        y = jnp.asarray(io["y"])
    return lambda x, t: module.apply(variables, x, t, y), y


def run_iddpm_losses(case: dict, root: pathlib.Path) -> dict:
    """training_losses at (x_start, t, noise): per-example 'mse', 'vb' (bits), 'loss', the
    noised 'x_t', and p_mean_variance at x_t ('mean', 'log_variance', 'pred_xstart'; clipped
    unless the case sets clip_denoised false). Only outputs the io holds are compared."""
    io = np.load(root / case["io"])
    diffusion = diffusion_from_flags(case["arch"], case.get("timestep_respacing"))
    model_fn, _ = _unet(case, root, io)
    x_start, noise = _nhwc(io["x_start"]), _nhwc(io["noise"])
    t = jnp.asarray(io["t"], jnp.int32)
    clip = bool(case.get("clip_denoised", True))

    @jax.jit
    def compute(x_start, noise, t):
        terms = training_losses(diffusion, model_fn, x_start, t, noise)
        x_t = q_sample(diffusion, x_start, t, noise)
        out = p_mean_variance(diffusion, model_fn, x_t, t, clip_denoised=clip)
        return terms, x_t, out

    terms, x_t, out = compute(x_start, noise, t)
    actual = {k: np.asarray(v) for k, v in terms.items()}
    actual["x_t"] = _nchw(x_t)
    for key in ("mean", "variance", "log_variance", "pred_xstart"):
        actual[key] = _nchw(out[key])
    results = {k: (actual[k], io[k]) for k in actual if k in io.files}
    missing = sorted(set(io.files) - set(actual) - {"x_start", "t", "y", "noise"})
    if missing:
        raise ValueError(f"io outputs {missing} are not produced by run_iddpm_losses")
    return results


def run_ddim_cg_sampler(case: dict, root: pathlib.Path) -> dict:
    """guided-diffusion's ddim_sample_loop from x_T = io 'noise' on the respaced process, with
    cond_fn = classifier_scale * grad log softmax(classifier(x_t, t))[y] ('samples') and
    without it ('samples_unguided'); the UNet and classifier see the original timesteps."""
    io = np.load(root / case["io"])
    eta = float(case.get("eta", 0.0))
    if eta != 0.0:
        raise ValueError(f"case {case.get('name')!r}: eta={eta} draws noise the fixture cannot "
                         "share; only deterministic DDIM (eta 0) is comparable")
    diffusion = diffusion_from_flags(case["arch"], case.get("timestep_respacing"))
    unet_fn, y = _unet(case, root, io)
    classifier, c_vars = load_encoder_kwargs(root / case["classifier"], case["classifier_arch"],
                                             dg_time=False)
    labels = jnp.asarray(io["y"])
    if classifier.num_classes is not None:
        logits_fn = lambda x, t: classifier.apply(c_vars, x, t, labels)  # noqa: E731
    else:
        logits_fn = lambda x, t: classifier.apply(c_vars, x, t)  # noqa: E731
    cond_fn = classifier_guidance_cond_fn(logits_fn, float(case["classifier_scale"]))
    clip = bool(case.get("clip_denoised", True))
    model_fn = lambda x, t, _y: unet_fn(x, t)  # noqa: E731  (labels already bound)

    @jax.jit
    def sample(noise):
        guided = ddim_sample(diffusion, model_fn, noise, y=labels, cond_fn=cond_fn,
                             clip_denoised=clip)
        unguided = ddim_sample(diffusion, model_fn, noise, y=labels, clip_denoised=clip)
        return guided, unguided

    guided, unguided = sample(_nhwc(io["noise"]))
    results = {"samples": (_nchw(guided), io["samples"])}
    if "samples_unguided" in io.files:
        results["samples_unguided"] = (_nchw(unguided), io["samples_unguided"])
    return results
