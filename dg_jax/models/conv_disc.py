"""A small time-conditioned convolutional discriminator for low-resolution images."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dg_jax.models.mlp import sinusoidal_embedding


class ConvDiscriminator(nn.Module):
    """logit(x_tau, tau[, label]): conv blocks (GroupNorm, SiLU, time embedding added per block,
    stride-2 downsampling between stages), global average pool, linear head. With
    `num_classes`, a label embedding is added to the time embedding (DG's conditional head)."""

    channels: Sequence[int] = (32, 64, 128)
    time_embed_dim: int = 128
    num_classes: Optional[int] = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, tau, labels=None):
        emb = sinusoidal_embedding(tau, self.time_embed_dim, scale=999.0)
        emb = nn.Dense(self.time_embed_dim, dtype=self.dtype)(emb)
        if self.num_classes is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            emb = emb + nn.Embed(self.num_classes, self.time_embed_dim)(labels)
        emb = nn.silu(emb)
        h = nn.Conv(self.channels[0], (3, 3), dtype=self.dtype)(x.astype(self.dtype))
        for i, ch in enumerate(self.channels):
            if i:
                h = nn.Conv(ch, (3, 3), strides=2, dtype=self.dtype)(h)
            r = nn.silu(nn.GroupNorm(num_groups=min(8, ch), dtype=self.dtype)(h))
            r = nn.Conv(ch, (3, 3), dtype=self.dtype)(r)
            r = r + nn.Dense(ch, dtype=self.dtype)(emb)[:, None, None, :]
            r = nn.silu(nn.GroupNorm(num_groups=min(8, ch), dtype=self.dtype)(r))
            h = h + nn.Conv(ch, (3, 3), dtype=self.dtype)(r)
        h = jnp.mean(nn.silu(h), axis=(1, 2))
        return nn.Dense(1, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)
