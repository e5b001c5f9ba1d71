"""Parity handlers for guided-diffusion networks and Discriminator Guidance.

Each `run_<kind>(case, root)` reads its files, architecture flags and settings from the case,
runs dg_jax, and returns {name: (actual, expected)} in the fixture's NCHW layout.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.convert.adm import load_adm_classifier, load_adm_unet, load_dg_discriminator
from dg_jax.convert.edm import load_edm_denoiser
from dg_jax.diffusion.processes import VP, VPCosine
from dg_jax.guidance.discriminator import dg_correction_fn
from dg_jax.samplers.edm import edm_sigma_steps
from dg_jax.samplers.edm_gpp import edm_gpp_sample

DG_PROCESS = VP(beta_min=0.1, beta_max=20.0)


def _nhwc(a) -> jnp.ndarray:
    return jnp.asarray(np.asarray(a).transpose(0, 2, 3, 1))


def _nchw(a) -> np.ndarray:
    return np.asarray(a).transpose(0, 3, 1, 2)


def _labels(io, key: str = "class_labels"):
    """Integer or one-hot labels from the io file; None when absent or empty (unconditional)."""
    if key not in io.files or io[key].size == 0:
        return None
    return jnp.asarray(io[key])


def _discriminator(case: dict, root: pathlib.Path, head_file: str, head_arch: str):
    return load_dg_discriminator(root / case["classifier"], case["classifier_arch"],
                                 root / case[head_file], case[head_arch])


def run_adm_classifier(case: dict, root: pathlib.Path) -> dict:
    """DG's ADM classifier (tau x999 inside): logits and middle-block features."""
    io = np.load(root / case["io"])
    module, variables = load_adm_classifier(root / case["checkpoint"], case["arch"], dg_time=True)
    x, t = _nhwc(io["x"]), jnp.asarray(io["t"])
    labels = _labels(io) if module.num_classes is not None else None
    logits = module.apply(variables, x, t, labels)
    features = module.apply(variables, x, t, labels, feature=True)
    return {"logits": (np.asarray(logits), io["logits"]),
            "features": (_nchw(features), io["features"])}


def run_dg_discriminator(case: dict, root: pathlib.Path) -> dict:
    """d = sigmoid(head(classifier features)) at (x_t, tau)."""
    io = np.load(root / case["io"])
    disc, params = _discriminator(case, root, "checkpoint", "arch")
    d = disc.prob(params, _nhwc(io["x"]), jnp.asarray(io["t"]), _labels(io))
    return {"d": (np.asarray(d), io["d"])}


def run_dg_correction(case: dict, root: pathlib.Path) -> dict:
    """DG's get_grad_log_ratio: -sigma^2 * grad_x log(d/(1-d)) at the EDM-scale x, i.e.
    -sigma^2 * alpha * grad_{x_vp} with x_vp = alpha x (d clipped to [1e-5, 1-1e-5]).

    DG computes the VP map in the precision of its inputs (the fixture's x and sigma are float64),
    runs the discriminator on float32(x_vp) with the float64 tau, and scales in float64; this
    handler follows that path under jax_enable_x64 so the time embedding sees the same float32
    value of 999 * tau (at tau near 1 float32(tau) * 999 differs from it by an ulp of 999)."""
    io = np.load(root / case["io"])
    disc, params = _discriminator(case, root, "checkpoint", "arch")
    dg = case.get("dg", {})
    with jax.enable_x64(True):
        corr = dg_correction_fn(disc.bind(params), process=DG_PROCESS,
                                time_min=float(dg.get("time_min", 0.0)),
                                time_max=float(dg.get("time_max", 1.0)), clip_probability=True,
                                input_dtype=jnp.float32)
        x = jnp.asarray(np.asarray(io["x"], np.float64).transpose(0, 2, 3, 1))
        sigma = jnp.asarray(np.asarray(io["sigma"], np.float64))
        grad = corr(x, sigma, _labels(io))
        guidance = np.asarray(-(sigma**2)[:, None, None, None] * grad)
    return {"guidance": (_nchw(guidance), io["guidance"])}


def run_adm_unet(case: dict, root: pathlib.Path) -> dict:
    """guided-diffusion UNetModel output (learned sigma: 2C channels) at integer t."""
    io = np.load(root / case["io"])
    module, variables = load_adm_unet(root / case["checkpoint"], case["arch"])
    y = jnp.asarray(io["y"]) if module.num_classes is not None else None
    out = module.apply(variables, _nhwc(io["x"]), jnp.asarray(io["t"]), y)
    return {"out": (_nchw(out), io["out"])}


def _dg_logit_fn(disc, params, img_resolution: int):
    """logit_fn(x_vp, tau, labels) for the guidance API. As DG's `get_grad_log_ratio`, a 64x64
    generator gets a discriminator trained on the cosine VP: tau is mapped to the cosine time
    with the same signal level (`compute_t_cos_from_t_lin`)."""
    if int(img_resolution) != 64:
        return disc.bind(params)
    cosine = VPCosine(s=0.008)
    return lambda x_vp, tau, labels=None: disc.logit(
        params, x_vp, cosine.t_from_sigma(DG_PROCESS.sigma(tau)), labels)


def run_dg_edm_sampler(case: dict, root: pathlib.Path) -> dict:
    """DG's EDM-G++ `edm_sampler` (DG generate.py): EDM's Heun sampler with
    `dg_weight_1st_order * DG` added to the Euler slope and `dg_weight_2nd_order * DG` to the
    Heun correction, each only where time_min <= tau(sigma) <= time_max; `boosting` as DG's.
    A stochastic case (S_churn > 0 or boosting) feeds DG's per-step standard normal draws from
    io `noise` [steps, B, C, H, W]."""
    cfg, dg = dict(case["sampler"]), dict(case["dg"])
    stochastic = float(cfg.get("S_churn", 0.0)) > 0 or bool(dg.get("boosting", False))
    io = np.load(root / case["io"])
    noise = None
    if stochastic:
        if "noise" not in io.files:
            raise ValueError(f"case {case.get('name')!r} is stochastic (sampler.S_churn > 0 or "
                             f"dg.boosting) but {case['io']} has no 'noise' array of per-step "
                             "draws [steps, B, C, H, W]")
        noise = jnp.asarray(np.asarray(io["noise"]).transpose(0, 1, 3, 4, 2), jnp.float32)
    denoise, params, arch = load_edm_denoiser(root / case["checkpoint"])
    disc, dparams = _discriminator(case, root, "discriminator", "discriminator_arch")
    logit_fn = _dg_logit_fn(disc, dparams, arch["init_kwargs"].get("img_resolution", 0))
    corr = dg_correction_fn(logit_fn, process=DG_PROCESS,
                            time_min=float(dg.get("time_min", 0.01)),
                            time_max=float(dg.get("time_max", 1.0)),
                            clip_probability=True, with_log_ratio=True)
    latents = _nhwc(np.asarray(io["latents"], np.float64))
    labels = np.asarray(io["class_labels"], np.float32) if "class_labels" in io.files else None
    if labels is not None and (labels.ndim != 2 or labels.shape[1] == 0):
        labels = None
    sigmas = edm_sigma_steps(int(cfg.get("num_steps", 18)),
                             max(float(cfg.get("sigma_min", 0.002)), denoise.sigma_min),
                             min(float(cfg.get("sigma_max", 80.0)), denoise.sigma_max),
                             float(cfg.get("rho", 7.0)), round_sigma=denoise.round_sigma)

    def sample(p, lat, lab, step_noise):
        fn = lambda x, s, y: denoise(p, x, s, y)  # noqa: E731
        return edm_gpp_sample(fn, lat, sigmas, corr, labels=lab, noise=step_noise,
                              weight_1st=float(dg.get("dg_weight_1st_order", 0.0)),
                              weight_2nd=float(dg.get("dg_weight_2nd_order", 0.0)),
                              boosting=bool(dg.get("boosting", False)),
                              S_churn=float(cfg.get("S_churn", 0.0)),
                              S_min=float(cfg.get("S_min", 0.0)),
                              S_max=float(cfg.get("S_max", float("inf"))),
                              S_noise=float(cfg.get("S_noise", 1.0)),
                              round_sigma=denoise.round_sigma)

    samples = jax.jit(sample)(params, latents, labels, noise)
    return {"samples": (_nchw(samples), io["samples"])}
