"""A compact StyleGAN2-style pair (Karras et al. 2020) as used by Diffusion-StyleGAN2, NHWC.

G: mapping network z -> w (2nd-moment normalisation, `mapping_layers` LeakyReLU FCs); synthesis
from a learned 4x4 constant through modulated 3x3 convolutions with weight demodulation
(computed as StyleGAN2's non-fused form: conv(x * s, w) * d, d = rsqrt(sum (w s)^2 + 1e-8)),
bilinear 2x upsampling and skip toRGB layers (modulated 1x1, no demodulation).
D: residual blocks (two 3x3 convs, 2x average-pool downsampling, 1x1 skip, / sqrt 2) down to
4x4, an FC layer, and a projection output <phi(x), cmap(t)> / sqrt(cmap_dim), where
cmap = mapping(embed(t)) is the diffusion step t sent through the discriminator's own mapping
network (as the official code feeds t into D's mapping). Omitted for compactness: per-pixel
noise inputs, style mixing, path-length regularisation, minibatch-stddev and equalised lr.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dg_jax.models.mlp import sinusoidal_embedding


def normalize_2nd_moment(x, eps: float = 1e-8):
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


class Mapping(nn.Module):
    """x -> normalize_2nd_moment(x) -> `num_layers` x (Dense(w_dim), LeakyReLU 0.2)."""

    w_dim: int = 128
    num_layers: int = 2

    @nn.compact
    def __call__(self, x):
        h = normalize_2nd_moment(x)
        for i in range(self.num_layers):
            h = nn.leaky_relu(nn.Dense(self.w_dim, name=f"fc_{i}")(h), 0.2)
        return h


class ModulatedConv(nn.Module):
    """conv(x * s, w) * d (+ bias), s = affine(w_latent) (bias init 1), d the demodulation."""

    features: int
    kernel: int = 3
    demodulate: bool = True

    @nn.compact
    def __call__(self, x, w_latent):
        cin = x.shape[-1]
        s = nn.Dense(cin, bias_init=nn.initializers.ones, name="affine")(w_latent)
        weight = self.param("weight", nn.initializers.normal(1.0),
                            (self.kernel, self.kernel, cin, self.features))
        weight = weight / math.sqrt(cin * self.kernel ** 2)
        y = jax.lax.conv_general_dilated(x * s[:, None, None, :], weight, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.demodulate:
            d = jax.lax.rsqrt(jnp.einsum("hwio,bi->bo", jnp.square(weight), jnp.square(s)) + 1e-8)
            y = y * d[:, None, None, :]
        return y + self.param("bias", nn.initializers.zeros, (self.features,))


def _up(x):
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), "bilinear")


class StyleGenerator(nn.Module):
    resolution: int = 32
    channels: int = 3
    z_dim: int = 128
    w_dim: int = 128
    width: int = 128
    mapping_layers: int = 2

    @nn.compact
    def __call__(self, z):
        w = Mapping(self.w_dim, self.mapping_layers, name="mapping")(z)
        const = self.param("const", nn.initializers.normal(1.0), (4, 4, self.width))
        x = jnp.broadcast_to(const, (z.shape[0], 4, 4, self.width))
        x = nn.leaky_relu(ModulatedConv(self.width, name="b4_conv")(x, w), 0.2)
        img = ModulatedConv(self.channels, 1, False, name="b4_rgb")(x, w)
        res, i = 4, 0
        while res < self.resolution:
            res, i = res * 2, i + 1
            x = nn.leaky_relu(ModulatedConv(self.width, name=f"b{res}_conv0")(_up(x), w), 0.2)
            x = nn.leaky_relu(ModulatedConv(self.width, name=f"b{res}_conv1")(x, w), 0.2)
            img = _up(img) + ModulatedConv(self.channels, 1, False, name=f"b{res}_rgb")(x, w)
        return img


class StyleDiscriminator(nn.Module):
    width: int = 128
    cmap_dim: int = 128
    mapping_layers: int = 2
    t_embed_dim: int = 64

    @nn.compact
    def __call__(self, y, t):
        x = nn.leaky_relu(nn.Conv(self.width, (1, 1), name="from_rgb")(y), 0.2)
        i = 0
        while x.shape[1] > 4:
            skip = nn.Conv(self.width, (1, 1), use_bias=False, name=f"skip_{i}")(
                nn.avg_pool(x, (2, 2), (2, 2)))
            h = nn.leaky_relu(nn.Conv(self.width, (3, 3), padding="SAME", name=f"conv0_{i}")(x), 0.2)
            h = nn.leaky_relu(nn.Conv(self.width, (3, 3), padding="SAME", name=f"conv1_{i}")(h), 0.2)
            x = (skip + nn.avg_pool(h, (2, 2), (2, 2))) / math.sqrt(2)
            i += 1
        x = nn.leaky_relu(nn.Conv(self.width, (3, 3), padding="SAME", name="epi_conv")(x), 0.2)
        x = nn.leaky_relu(nn.Dense(self.width, name="epi_fc")(x.reshape(x.shape[0], -1)), 0.2)
        x = nn.Dense(self.cmap_dim, name="epi_out")(x)
        emb = nn.Dense(self.cmap_dim, name="t_embed")(
            sinusoidal_embedding(jnp.asarray(t, jnp.float32), self.t_embed_dim, scale=1.0))
        cmap = Mapping(self.cmap_dim, self.mapping_layers, name="mapping")(emb)
        return jnp.sum(x * cmap, axis=-1) / math.sqrt(self.cmap_dim)
