"""A DCGAN-style pair (Radford et al. 2016) for small NHWC images in [-1, 1].

G: z -> Dense(4x4x(w*2^k)) -> [ConvTranspose 4x4 stride 2, BatchNorm-free, ReLU] up to the
resolution -> 3x3 conv -> tanh. D: [4x4 stride-2 conv, LeakyReLU 0.2] down to 4x4 (or less) ->
Dense(1) plus a projection term <phi(h), e(t)> with e(t) a learned embedding of the diffusion
step's sinusoidal features (the discriminator is conditioned on t).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from dg_jax.models.mlp import sinusoidal_embedding


def _num_up(resolution: int) -> int:
    n = int(round(math.log2(resolution))) - 2
    if n < 1 or 4 * 2 ** n != resolution:
        raise ValueError(f"resolution {resolution} must be a power of two >= 8")
    return n


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
            h = nn.relu(nn.ConvTranspose(ch, (4, 4), (2, 2), padding="SAME", name=f"up_{i}")(h))
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
