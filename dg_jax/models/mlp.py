"""Small time-conditioned MLPs for low-dimensional problems (the 2-D DG experiment)."""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp


def sinusoidal_embedding(t, dim: int, max_period: float = 10000.0, scale: float = 1000.0):
    """[cos(scale t f_i), sin(scale t f_i)] with f_i = max_period^(-i / (dim/2)) (ADM's layout)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = (scale * jnp.asarray(t, jnp.float32))[:, None] * freqs[None]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class TimeMLP(nn.Module):
    """y = MLP(x, t): `depth` SiLU layers of `width` units; the time embedding is added to the
    input layer (and to every layer with `time_every_layer`).

    Returns shape (B, out_dim), or (B,) when out_dim == 1 and `squeeze`.
    """

    width: int = 256
    depth: int = 4
    out_dim: int = 1
    time_embed_dim: int = 64
    time_scale: float = 1000.0
    squeeze: bool = True
    time_every_layer: bool = False
    dtype: Any = jnp.float32  # compute dtype; params stay float32

    @nn.compact
    def __call__(self, x, t):
        emb = sinusoidal_embedding(t, self.time_embed_dim, scale=self.time_scale)
        emb = nn.silu(nn.Dense(self.width, dtype=self.dtype, name="time_in")(emb))
        h = nn.Dense(self.width, dtype=self.dtype, name="x_in")(x)
        h = h + nn.Dense(self.width, dtype=self.dtype, name="time_proj")(emb)
        for i in range(self.depth):
            if self.time_every_layer and i:
                h = h + nn.Dense(self.width, dtype=self.dtype, name=f"time_{i}")(emb)
            h = nn.Dense(self.width, dtype=self.dtype, name=f"hidden_{i}")(nn.silu(h))
        out = nn.Dense(self.out_dim, dtype=self.dtype, name="out")(nn.silu(h))
        out = out.astype(jnp.float32)
        return out[:, 0] if (self.squeeze and self.out_dim == 1) else out
