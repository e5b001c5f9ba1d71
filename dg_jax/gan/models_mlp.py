"""An MLP generator / t-conditioned MLP discriminator pair for low-dimensional data (25 Gaussians)."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from dg_jax.models.mlp import sinusoidal_embedding


class MLPGenerator(nn.Module):
    """x = Dense(out_dim)(ReLU(Dense(width)) x depth)(z)."""

    out_dim: int = 2
    width: int = 400
    depth: int = 4

    @nn.compact
    def __call__(self, z):
        h = z
        for i in range(self.depth):
            h = nn.relu(nn.Dense(self.width, name=f"hidden_{i}")(h))
        return nn.Dense(self.out_dim, name="out")(h)


class MLPDiscriminator(nn.Module):
    """logit = MLP(y) with `depth` LeakyReLU(0.2) layers of `width`; the diffusion step t
    enters through a sinusoidal embedding projected onto the first hidden layer
    (t = 0 for a vanilla GAN). Returns (B,)."""

    width: int = 200
    depth: int = 3
    t_embed_dim: int = 32

    @nn.compact
    def __call__(self, y, t):
        emb = sinusoidal_embedding(jnp.asarray(t, jnp.float32), self.t_embed_dim, scale=1.0)
        h = nn.Dense(self.width, name="in")(y) + nn.Dense(self.width, name="t_proj")(emb)
        h = nn.leaky_relu(h, 0.2)
        for i in range(1, self.depth):
            h = nn.leaky_relu(nn.Dense(self.width, name=f"hidden_{i}")(h), 0.2)
        return nn.Dense(1, name="out")(h)[:, 0]
