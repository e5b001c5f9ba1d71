"""Runs a parity manifest: every case by its `kind`, compared with the official code's outputs.

A case handler is a function `(case: dict, root: pathlib.Path) -> dict[str, (actual, expected)]`
living in one of the modules named in `KIND_HANDLERS`; it reads everything it needs from the case
(files, architecture flags, sampler settings) and never from the case's name. Arrays come back
in the fixture's layout (NCHW where the fixture says so) so the comparison here is layout-free.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import pathlib
from typing import Callable

import numpy as np

# kind -> "module:function". Modules are imported only when a case of that kind runs.
KIND_HANDLERS: dict[str, str] = {
    "edm_denoiser": "dg_jax.parity.edm_cases:run_edm_denoiser",
    "edm_sampler": "dg_jax.parity.edm_cases:run_edm_sampler",
    "adm_classifier": "dg_jax.parity.adm_cases:run_adm_classifier",
    "dg_discriminator": "dg_jax.parity.adm_cases:run_dg_discriminator",
    "dg_correction": "dg_jax.parity.adm_cases:run_dg_correction",
    "dg_edm_sampler": "dg_jax.parity.adm_cases:run_dg_edm_sampler",
    "adm_unet": "dg_jax.parity.adm_cases:run_adm_unet",
    "iddpm_losses": "dg_jax.parity.iddpm_cases:run_iddpm_losses",
    "ddim_cg_sampler": "dg_jax.parity.iddpm_cases:run_ddim_cg_sampler",
    "fid_inception": "dg_jax.parity.fid_cases:run_fid_inception",
    "diffusion_gan_adaptive": "dg_jax.parity.dgan_cases:run_diffusion_gan_adaptive",
    "diffusion_gan_q_sample": "dg_jax.parity.dgan_cases:run_diffusion_gan_q_sample",
    "sd_vae_encode": "dg_jax.parity.vae_cases:run_sd_vae_encode",
    "sd_vae_decode": "dg_jax.parity.vae_cases:run_sd_vae_decode",
    "dit_forward": "dg_jax.parity.dit_cases:run_dit_forward",
    "dit_cfg_forward": "dg_jax.parity.dit_cases:run_dit_cfg_forward",
    "dit_dg_cond_fn": "dg_jax.parity.dit_dg_cases:run_dit_dg_cond_fn",
    "dit_dg_sampler": "dg_jax.parity.dit_dg_cases:run_dit_dg_sampler",
}


@dataclasses.dataclass
class CaseResult:
    name: str
    kind: str
    passed: bool
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    detail: str = ""

    def line(self) -> str:
        status = "PASS" if self.passed else "FAIL"
        text = (f"{status} {self.name} [{self.kind}] max_abs={self.max_abs:.3e} "
                f"max_rel={self.max_rel:.3e}")
        return text + (f"  {self.detail}" if self.detail else "")


def resolve_handler(kind: str) -> Callable:
    if kind not in KIND_HANDLERS:
        raise KeyError(f"unknown parity case kind {kind!r}; known kinds: {sorted(KIND_HANDLERS)}")
    module_name, fn_name = KIND_HANDLERS[kind].split(":")
    return getattr(importlib.import_module(module_name), fn_name)


def compare(outputs: dict, rtol: float, atol: float) -> tuple[bool, float, float, str]:
    """assert_allclose semantics: |a - e| <= atol + rtol * |e| for every entry of every output."""
    ok, worst_abs, worst_rel, bad = True, 0.0, 0.0, []
    for key, (actual, expected) in outputs.items():
        actual = np.asarray(actual, np.float64)
        expected = np.asarray(expected, np.float64)
        if actual.shape != expected.shape:
            ok = False
            bad.append(f"{key}: shape {actual.shape} != expected {expected.shape}")
            continue
        err = np.abs(actual - expected)
        if err.size:
            worst_abs = max(worst_abs, float(err.max()))
            rel = err / np.maximum(np.abs(expected), 1e-12)
            worst_rel = max(worst_rel, float(rel.max()))
        within = np.all(err <= atol + rtol * np.abs(expected)) and np.all(np.isfinite(actual))
        if not within:
            ok = False
            bad.append(f"{key} out of tolerance")
    return ok, worst_abs, worst_rel, "; ".join(bad)


def run_case(case: dict, root: pathlib.Path) -> CaseResult:
    name, kind = case.get("name", "?"), case.get("kind", "?")
    try:
        handler = resolve_handler(kind)
    except KeyError as err:
        return CaseResult(name, kind, False, detail=str(err.args[0]))
    try:
        outputs = handler(case, root)
    except Exception as err:  # a crashing case is a failing case, reported with its reason
        return CaseResult(name, kind, False, detail=f"error: {type(err).__name__}: {err}")
    ok, max_abs, max_rel, detail = compare(outputs, float(case["rtol"]), float(case["atol"]))
    return CaseResult(name, kind, ok, max_abs, max_rel, detail)


def run_manifest(fixtures: str | pathlib.Path, only: str | None = None,
                 echo: Callable[[str], None] = print) -> list[CaseResult]:
    root = pathlib.Path(fixtures)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no manifest.json in fixtures folder {root}")
    cases = json.loads(manifest_path.read_text())["cases"]
    results = []
    for case in cases:
        if only and only not in (case.get("name"), case.get("kind")):
            continue
        result = run_case(case, root)
        echo(result.line())
        results.append(result)
    passed = sum(r.passed for r in results)
    echo(f"{passed} passed, {len(results) - passed} failed")
    return results
