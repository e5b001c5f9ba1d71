"""scikit-learn's handwritten digits: 1,797 real 8x8 grey images that ship with the package, the
embedded image data set of dg_jax (no download, so every test and demo runs offline).

Training data reads them through `dg_jax.data.images` (source 'digits'); the evaluation code
(the digits classifier, the guidance sweep's reference) reads them here directly.
"""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from dg_jax.data.shards import to_float, to_uint8
from dg_jax.errors import ConfigError

# The one quantisation of samples in [-1, 1] is `dg_jax.data.shards.to_uint8`; this name stays
# for the callers that import it from here.
float_to_uint8 = to_uint8


def load_digits_uint8(resolution: int = 8, field: str = "data.resolution"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, R, R, 1), labels int32 (N,)); R = 8 or a multiple of 8 (bilinear
    upsampling with half-pixel centres, so strokes stay smooth). `field` names R in errors."""
    if resolution != 8 and (resolution <= 0 or resolution % 8):
        raise ConfigError(f"{field}={resolution}: the digits are 8x8; choose 8 or a multiple "
                          "of 8")
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # values 0..16
    if resolution != 8:
        images = _resize_bilinear(images, resolution)
    images = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int32)


def load_digits_float(resolution: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [-1, 1] (float32 NHWC, `shards.to_float`) and labels."""
    images, labels = load_digits_uint8(resolution)
    return to_float(images), labels


def _resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    n, h, w = images.shape
    def weights(src, dst):
        pos = (np.arange(dst) + 0.5) * src / dst - 0.5
        pos = np.clip(pos, 0, src - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, src - 1)
        frac = pos - lo
        m = np.zeros((dst, src), np.float32)
        m[np.arange(dst), lo] += 1 - frac
        m[np.arange(dst), hi] += frac
        return m
    wh, ww = weights(h, size), weights(w, size)
    return np.einsum("ih,nhw,jw->nij", wh, images, ww)
