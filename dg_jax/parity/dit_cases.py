"""Parity handlers for DiT (facebookresearch/DiT `models.py`, as DG_imagenet ships it).

Each `run_<kind>(case, root)` reads its checkpoint, the DiT constructor arguments (`arch`) and
the guidance settings from the case, runs dg_jax, and returns {name: (actual, expected)} in the
fixture's NCHW layout. The official checkpoint's `pos_embed` is loaded, never recomputed.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.convert.dit import load_dit
from dg_jax.guidance.dit_cfg import forward_with_dg


def _nhwc(a) -> jnp.ndarray:
    return jnp.asarray(np.asarray(a, np.float32).transpose(0, 2, 3, 1))


def _nchw(a) -> np.ndarray:
    return np.asarray(a).transpose(0, 3, 1, 2)


def _model(case: dict, root: pathlib.Path):
    module, variables = load_dit(root / case["checkpoint"], case["arch"])
    return module, variables, jax.jit(module.apply)


def run_dit_forward(case: dict, root: pathlib.Path) -> dict:
    """`DiT(**arch).forward(x, t, y)` in eval mode: out [B, 2C, H, W] (C with learn_sigma off)."""
    io = np.load(root / case["io"])
    _, variables, apply = _model(case, root)
    out = apply(variables, _nhwc(io["x"]), jnp.asarray(io["t"], jnp.int32),
                jnp.asarray(io["y"], jnp.int32))
    return {"out": (_nchw(out), io["out"])}


def run_dit_cfg_forward(case: dict, root: pathlib.Path) -> dict:
    """`forward_with_dg(x[k], t[k], y, LT_cfg, ST_cfg, branch_time)` for each call k, on the
    official doubled batch (N = 2B rows, y[B:] = null): out [K, N, C', H, W]."""
    io = np.load(root / case["io"])
    module, variables, apply = _model(case, root)
    learned_variance = bool(module.learn_sigma)
    y = jnp.asarray(io["y"], jnp.int32)

    @jax.jit
    def call(x, t):
        return forward_with_dg(lambda a, b, c: apply(variables, a, b, c), x, t, y,
                               float(case["LT_cfg"]), float(case["ST_cfg"]),
                               float(case["branch_time"]), doubled=True,
                               learned_variance=learned_variance)

    xs, ts = np.asarray(io["x"]), np.asarray(io["t"])
    outs = [_nchw(call(_nhwc(xs[k]), jnp.asarray(ts[k], jnp.int32))) for k in range(len(xs))]
    return {"out": (np.stack(outs), io["out"])}
