"""Parity handlers for EDM networks and EDM's sampler (kinds `edm_denoiser`, `edm_sampler`).

Everything comes from the case: `checkpoint` (an EDM network pickle), `io` (inputs and expected
outputs), `layout` (the io arrays' layout, NCHW or NHWC) and, for the sampler, `sampler`
(num_steps, sigma_min, sigma_max, rho, S_churn, S_min, S_max, S_noise).
"""
from __future__ import annotations

import pathlib

import jax
import numpy as np

from dg_jax.convert.edm import load_edm_denoiser
from dg_jax.samplers.edm import edm_sigma_steps, heun_sample


def _to_nhwc(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "NCHW":
        return np.transpose(array, (0, 2, 3, 1))
    if layout == "NHWC":
        return array
    raise ValueError(f"unsupported io layout {layout!r} (field 'layout')")


def _from_nhwc(array, layout: str) -> np.ndarray:
    array = np.asarray(array)
    return np.transpose(array, (0, 3, 1, 2)) if layout == "NCHW" else array


def _labels(io, key: str = "class_labels"):
    """One-hot labels, or None when absent or of width 0 (unconditional)."""
    if key not in io.files:
        return None
    labels = np.asarray(io[key], np.float32)
    return labels if labels.ndim == 2 and labels.shape[1] > 0 else None


def run_edm_denoiser(case: dict, root: pathlib.Path) -> dict:
    """D(x; sigma, class_labels) of the pickled preconditioned network vs `denoised`."""
    root = pathlib.Path(root)
    layout = case.get("layout", "NCHW")
    denoise, params, _ = load_edm_denoiser(root / case["checkpoint"])
    io = np.load(root / case["io"])
    x = _to_nhwc(np.asarray(io["x"], np.float32), layout)
    sigma = np.asarray(io["sigma"], np.float32)
    out = jax.jit(denoise)(params, x, sigma, _labels(io))
    return {"denoised": (_from_nhwc(out, layout), io["denoised"])}


def run_edm_sampler(case: dict, root: pathlib.Path) -> dict:
    """EDM's `edm_sampler` (generate.py): sigma range clipped to the network's, rho-spaced steps
    passed through `net.round_sigma`, x0 = latents * sigma_0 in float64, Heun steps with the
    final step Euler. Only deterministic settings (S_churn = 0) can match torch's RNG."""
    root = pathlib.Path(root)
    layout = case.get("layout", "NCHW")
    cfg = dict(case["sampler"])
    if float(cfg.get("S_churn", 0.0)) > 0:
        raise ValueError("edm_sampler parity needs S_churn = 0: torch's noise draws cannot be "
                         "reproduced (field 'sampler.S_churn')")
    denoise, params, _ = load_edm_denoiser(root / case["checkpoint"])
    io = np.load(root / case["io"])
    latents = _to_nhwc(np.asarray(io["latents"], np.float64), layout)
    labels = _labels(io)
    sigma_min = max(float(cfg.get("sigma_min", 0.002)), denoise.sigma_min)
    sigma_max = min(float(cfg.get("sigma_max", 80.0)), denoise.sigma_max)
    sigmas = edm_sigma_steps(int(cfg.get("num_steps", 18)), sigma_min, sigma_max,
                             float(cfg.get("rho", 7.0)), round_sigma=denoise.round_sigma)

    def sample(p, lat, lab):
        fn = lambda x, s, y: denoise(p, x, s, y)  # noqa: E731
        return heun_sample(fn, lat, sigmas, labels=lab, S_churn=0.0,
                           S_min=float(cfg.get("S_min", 0.0)),
                           S_max=float(cfg.get("S_max", float("inf"))),
                           S_noise=float(cfg.get("S_noise", 1.0)),
                           round_sigma=denoise.round_sigma)

    samples = jax.jit(sample)(params, latents, labels)
    return {"samples": (_from_nhwc(samples, layout), io["samples"])}
