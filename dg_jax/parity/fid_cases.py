"""Parity handler for pytorch-fid's FID Inception (kind `fid_inception`).

The case names a pytorch-fid state_dict (`checkpoint`) and an io .npz with `images_uint8` (NCHW)
in and `pool3` (B, 2048), `logits` (B, 1008) out; see ../shared/fixtures/fid/README.md.
"""
from __future__ import annotations

import pathlib

import jax
import numpy as np

from dg_jax.convert.inception import load_fid_inception
from dg_jax.eval.features import inception_features


def run_fid_inception(case: dict, root: pathlib.Path) -> dict:
    """uint8 images -> /255 -> resize 299 -> [-1, 1] -> FID Inception: compare pool3 and logits."""
    variables = load_fid_inception(root / case["checkpoint"])
    io = np.load(root / case["io"])
    images = np.asarray(io["images_uint8"])
    if case.get("layout", "NCHW") == "NCHW":
        images = np.transpose(images, (0, 2, 3, 1))
    pool3, logits = jax.jit(inception_features)(variables, images)
    return {"pool3": (np.asarray(pool3), io["pool3"]), "logits": (np.asarray(logits), io["logits"])}
