"""scikit-learn's handwritten digits: 1,797 real 8x8 grey images that ship with the package, the
embedded image data set of dg_jax (no download, so every test and demo runs offline)."""
from __future__ import annotations

import numpy as np


def load_digits_uint8(resolution: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, R, R, 1), labels int32 (N,)); R = 8 or a multiple of 8 (bilinear
    upsampling with half-pixel centres, so strokes stay smooth)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # values 0..16
    if resolution != 8:
        if resolution % 8:
            raise ValueError(f"digits resolution {resolution} (field 'data.resolution') must be "
                             "8 or a multiple of 8")
        images = _resize_bilinear(images, resolution)
    images = np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int32)


def load_digits_float(resolution: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [-1, 1] (float32 NHWC) and labels."""
    images, labels = load_digits_uint8(resolution)
    return uint8_to_float(images), labels


def uint8_to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def float_to_uint8(images) -> np.ndarray:
    """EDM's quantisation of samples in [-1, 1]: (x * 127.5 + 128).clip(0, 255) as uint8."""
    return np.clip(np.asarray(images, np.float32) * 127.5 + 128.0, 0, 255).astype(np.uint8)


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
