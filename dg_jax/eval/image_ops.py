"""Image preprocessing for the FID Inception network, matching pytorch-fid exactly.

pytorch-fid feeds `uint8 / 255` through `F.interpolate(x, (299, 299), mode="bilinear",
align_corners=False)` and then `2 * x - 1`. `jax.image.resize` is not a substitute: it antialiases
when downsampling (a wider triangle kernel), whereas torch's bilinear always reads the two nearest
source pixels. `resize_bilinear_half_pixel` reproduces torch's rule for both directions.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from dg_jax.models.inception import INPUT_SIZE


def half_pixel_linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray, np.ndarray]:
    """Source indices and weights of torch's 1-D linear interpolation with align_corners=False.

    For output index i: src = max((i + 0.5) * in/out - 0.5, 0), i0 = floor(src),
    i1 = min(i0 + 1, in - 1), w1 = src - i0, w0 = 1 - w1 (ATen's area_pixel_compute_source_index
    and upsample_bilinear2d). Returns (i0, i1, w0, w1); weights in float64.
    """
    scale = in_size / out_size
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = src - i0
    return i0, i1, 1.0 - w1, w1


def resize_bilinear_half_pixel(x, size: tuple[int, int]):
    """Bilinear resize of NHWC `x` to `size` = (H, W) as torch `F.interpolate(align_corners=False)`.

    Separable gather-based interpolation (rows, then columns), no antialiasing, for up- and
    down-sampling alike; computed in x's floating dtype.
    """
    x = jnp.asarray(x)
    out_h, out_w = size
    h0, h1, hw0, hw1 = half_pixel_linear_taps(x.shape[1], out_h)
    c0, c1, cw0, cw1 = half_pixel_linear_taps(x.shape[2], out_w)
    dt = x.dtype
    x = (jnp.take(x, h0, axis=1) * jnp.asarray(hw0, dt)[None, :, None, None]
         + jnp.take(x, h1, axis=1) * jnp.asarray(hw1, dt)[None, :, None, None])
    x = (jnp.take(x, c0, axis=2) * jnp.asarray(cw0, dt)[None, None, :, None]
         + jnp.take(x, c1, axis=2) * jnp.asarray(cw1, dt)[None, None, :, None])
    return x


def inception_preprocess(images_uint8, dtype=jnp.float32):
    """uint8 NHWC RGB -> /255 -> bilinear resize to 299x299 (half-pixel) -> 2x - 1 (pytorch-fid)."""
    x = jnp.asarray(images_uint8).astype(dtype) / 255.0
    if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        x = resize_bilinear_half_pixel(x, (INPUT_SIZE, INPUT_SIZE))
    return 2.0 * x - 1.0


def quantize_to_uint8(samples):
    """Float samples in [-1, 1] -> uint8 as EDM saves images: (x * 127.5 + 128).clip(0, 255).

    The cast truncates toward zero, like torch's `.to(torch.uint8)` in EDM's generate.py.
    """
    x = jnp.asarray(samples)
    return jnp.clip(x * 127.5 + 128, 0, 255).astype(jnp.uint8)
