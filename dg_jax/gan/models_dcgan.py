"""A DCGAN-style pair (Radford et al. 2016) for small NHWC images in [-1, 1].

G: z -> Dense(4x4x(w*2^k)) -> [ConvTranspose 4x4 stride 2 (as `UpConv`), BatchNorm-free, ReLU] up to the
resolution -> 3x3 conv -> tanh. D: [4x4 stride-2 conv, LeakyReLU 0.2] down to 4x4 (or less) ->
Dense(1) plus a projection term <phi(h), e(t)> with e(t) a learned embedding of the diffusion
step's sinusoidal features (the discriminator is conditioned on t).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.models.mlp import sinusoidal_embedding


def _num_up(resolution: int) -> int:
    n = int(round(math.log2(resolution))) - 2
    if n < 1 or 4 * 2 ** n != resolution:
        raise ValueError(f"resolution {resolution} must be a power of two >= 8")
    return n


# Output row 2i + a of a 4x4 stride-2 'SAME' transposed convolution reads input rows i - 1, i
# (a = 0, taps 0 and 2) or i, i + 1 (a = 1, taps 1 and 3): two taps per parity.
_PARITY_TAPS = ((0, 2), (1, 3))


class UpConv(nn.Module):
    """`nn.ConvTranspose(features, (4, 4), (2, 2), padding='SAME')` (the same 'kernel' and 'bias'
    parameters and outputs) computed as four 2x2 convolutions, one per output parity,
    interleaved: XLA CPU differentiates the dilated transposed convolution ~10x slower."""

    features: int

    @nn.compact
    def __call__(self, x):
        cin = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (4, 4, cin, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        b, h, w, _ = x.shape
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        rows = []
        for a, taps_a in enumerate(_PARITY_TAPS):
            cols = []
            for c, taps_c in enumerate(_PARITY_TAPS):
                k = kernel[np.array(taps_a)][:, np.array(taps_c)].astype(x.dtype)
                window = xp[:, a:a + h + 1, c:c + w + 1]
                cols.append(jax.lax.conv_general_dilated(
                    window, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")))
            rows.append(jnp.stack(cols, axis=3))  # (b, h, w, 2, f)
        y = jnp.stack(rows, axis=2)  # (b, h, 2, w, 2, f)
        return y.reshape(b, 2 * h, 2 * w, self.features) + bias


class DCGANGenerator(nn.Module):
    resolution: int = 8
    channels: int = 1
    width: int = 64

    @nn.compact
    def __call__(self, z):
        n = _num_up(self.resolution)
        ch = self.width * 2 ** (n - 1)
        h = nn.relu(nn.Dense(4 * 4 * ch * 2, name="fc")(z)).reshape(z.shape[0], 4, 4, ch * 2)
        for i in range(n):
            h = nn.relu(UpConv(ch, name=f"up_{i}")(h))
            ch = max(ch // 2, self.width)
        return jnp.tanh(nn.Conv(self.channels, (3, 3), padding="SAME", name="to_img")(h))


class DCGANDiscriminator(nn.Module):
    width: int = 64
    t_embed_dim: int = 64

    @nn.compact
    def __call__(self, y, t):
        h, ch, i = y, self.width, 0
        while h.shape[1] > 4 or i == 0:
            h = nn.leaky_relu(nn.Conv(ch, (4, 4), (2, 2), padding="SAME", name=f"down_{i}")(h), 0.2)
            ch, i = ch * 2, i + 1
        h = h.reshape(h.shape[0], -1)
        h = nn.leaky_relu(nn.Dense(4 * self.width, name="fc")(h), 0.2)
        emb = sinusoidal_embedding(jnp.asarray(t, jnp.float32), self.t_embed_dim, scale=1.0)
        e = nn.Dense(4 * self.width, name="t_embed")(nn.leaky_relu(
            nn.Dense(4 * self.width, name="t_map")(emb), 0.2))
        out = nn.Dense(1, name="out")(h)[:, 0]
        return out + jnp.sum(h * e, axis=-1) / math.sqrt(4 * self.width)
