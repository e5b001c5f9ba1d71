"""Building blocks of guided-diffusion's ADM networks (Dhariwal & Nichol 2021), ported exactly.

Follows `guided_diffusion/nn.py` and `guided_diffusion/unet.py` of openai/guided-diffusion in
NHWC layout. Submodule names are chosen so that a parameter path maps onto the PyTorch
state-dict key by turning each `_<digits>` into `.<digits>` (e.g. `input_blocks_1_0/in_layers_2`
is `input_blocks.1.0.in_layers.2`); `dg_jax.convert.adm` relies on this.

Initialisers follow PyTorch's defaults (uniform in +-1/sqrt(fan_in) for weights and biases,
N(0, 1) embeddings) and guided-diffusion's `zero_module` layers start at zero, so a freshly
initialised network (e.g. a DG discriminator head trained from scratch) matches the official one
in distribution.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.models.attention import fused_attention, use_fused_attention

Dtype = Any


def torch_kernel_init():
    """PyTorch's default Linear/Conv weight init: kaiming_uniform(a=sqrt(5)) = U(+-fan_in^-1/2)."""
    return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
    """PyTorch's default bias init for Linear/Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(max(fan_in, 1))

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(features: int, fan_in: int, *, zero: bool = False, dtype: Dtype = jnp.float32,
          name: Optional[str] = None) -> nn.Dense:
    """nn.Linear / 1x1 nn.Conv1d of guided-diffusion as a Dense layer on the last axis."""
    if zero:
        return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32, name=name,
                        kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)
    return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32, name=name,
                    kernel_init=torch_kernel_init(), bias_init=torch_bias_init(fan_in))


def conv2d(features: int, fan_in_channels: int, kernel: int = 3, stride: int = 1, *,
           zero: bool = False, dtype: Dtype = jnp.float32, name: Optional[str] = None) -> nn.Conv:
    """nn.Conv2d(kernel, stride, padding=kernel // 2) in NHWC."""
    pad = kernel // 2
    kw = dict(kernel_size=(kernel, kernel), strides=(stride, stride),
              padding=((pad, pad), (pad, pad)), dtype=dtype, param_dtype=jnp.float32, name=name)
    if zero:
        return nn.Conv(features, kernel_init=nn.initializers.zeros,
                       bias_init=nn.initializers.zeros, **kw)
    return nn.Conv(features, kernel_init=torch_kernel_init(),
                   bias_init=torch_bias_init(fan_in_channels * kernel * kernel), **kw)


class GroupNorm32(nn.Module):
    """guided-diffusion's `normalization(channels)`: GroupNorm(32 groups, eps 1e-5) computed in
    float32 and cast back to the input dtype. Normalises over the spatial axes and the channels
    of a group (channels last); a 2-D input (N, C) normalises over the channels of each group."""

    num_groups: int = 32
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        if channels % self.num_groups:
            raise ValueError(f"GroupNorm32: {channels} channels are not divisible into "
                             f"{self.num_groups} groups")
        scale = self.param("scale", nn.initializers.ones, (channels,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
        h = x.astype(jnp.float32)
        g = h.reshape(h.shape[0], -1, self.num_groups, channels // self.num_groups)
        mean = jnp.mean(g, axis=(1, 3), keepdims=True)
        var = jnp.mean(jnp.square(g - mean), axis=(1, 3), keepdims=True)
        g = (g - mean) * jax.lax.rsqrt(var + self.epsilon)
        return (g.reshape(h.shape) * scale + bias).astype(x.dtype)


def timestep_embedding(timesteps, dim: int, max_period: float = 10000.0):
    """Sinusoidal embedding [cos(t f_k), sin(t f_k)], f_k = exp(-log(max_period) k / half),
    k = 0..half-1, computed in float32 (guided-diffusion `nn.timestep_embedding`); an odd `dim`
    gets a zero column appended. timesteps: (N,) possibly fractional -> (N, dim)."""
    half = dim // 2
    # The exponent is formed in float32 as PyTorch does, the exp rounded correctly on the host:
    # XLA's float32 exp can be 1 ulp off, which moves t * f_k by ~1e-4 at t ~ 1000.
    expo = np.float32(-math.log(max_period)) * np.arange(half, dtype=np.float32) / np.float32(half)
    freqs = jnp.asarray(np.exp(expo.astype(np.float64)).astype(np.float32))
    args = jnp.asarray(timesteps).astype(jnp.float32)[:, None] * freqs[None]
    emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        emb = jnp.concatenate([emb, jnp.zeros_like(emb[:, :1])], axis=-1)
    return emb


def qkv_attention(qkv, num_heads: int, legacy: bool, impl: str = "xla",
                  field: str = "attention_impl"):
    """Multi-head dot-product attention over the token axis of qkv (B, T, 3 H C).

    Channel layout as in PyTorch's (B, 3 H C, T): `legacy` (QKVAttentionLegacy) splits heads
    first, channel = h*3C + {q,k,v}*C + c; otherwise (QKVAttention) q/k/v first,
    channel = {q,k,v}*H*C + h*C + c. q and k are each scaled by C^-1/4, the softmax is taken in
    float32. Returns (B, T, H C) with channel = h*C + c. `impl`: see `dg_jax.models.attention`
    ('auto' runs cuDNN's fused kernel on GPUs in 16 bits; `field` names it in errors).
    """
    b, t, width = qkv.shape
    if width % (3 * num_heads):
        raise ValueError(f"qkv width {width} is not divisible by 3 * {num_heads} heads")
    ch = width // (3 * num_heads)
    if legacy:
        r = qkv.reshape(b, t, num_heads, 3, ch)
        q, k, v = r[:, :, :, 0], r[:, :, :, 1], r[:, :, :, 2]
    else:
        r = qkv.reshape(b, t, 3, num_heads, ch)
        q, k, v = r[:, :, 0], r[:, :, 1], r[:, :, 2]
    if use_fused_attention(impl, qkv.dtype, ch, field):
        return fused_attention(q, k, v, 1.0 / math.sqrt(ch)).reshape(b, t, num_heads * ch)
    scale = 1.0 / math.sqrt(math.sqrt(ch))
    weight = jnp.einsum("bthc,bshc->bhts", q * scale, k * scale)
    weight = jax.nn.softmax(weight.astype(jnp.float32), axis=-1).astype(weight.dtype)
    out = jnp.einsum("bhts,bshc->bthc", weight, v)
    return out.reshape(b, t, num_heads * ch)


def upsample_nearest(x):
    """F.interpolate(scale_factor=2, mode='nearest') on NHWC."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def avg_pool2(x):
    """nn.AvgPool2d(kernel_size=2, stride=2) on NHWC (odd trailing rows/columns dropped)."""
    b, h, w, c = x.shape
    x = x[:, : h - h % 2, : w - w % 2]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class _Resample(nn.Module):
    """The fields of Upsample and Downsample: the conv (if `use_conv`) maps the input's channels
    to `out_channels` (default: unchanged) in `dtype`."""

    use_conv: bool
    out_channels: Optional[int] = None
    dtype: Dtype = jnp.float32


class Upsample(_Resample):
    """Nearest x2 upsampling, then a 3x3 conv (named `conv`) when `use_conv`."""

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        x = upsample_nearest(x)
        if self.use_conv:
            x = conv2d(self.out_channels or channels, channels, 3, dtype=self.dtype, name="conv")(x)
        return x


class Downsample(_Resample):
    """Stride-2 3x3 conv (named `op`) when `use_conv`, else 2x2 average pooling."""

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        if self.use_conv:
            return conv2d(self.out_channels or channels, channels, 3, stride=2, dtype=self.dtype,
                          name="op")(x)
        if self.out_channels not in (None, channels):
            raise ValueError("Downsample without conv cannot change the channel count")
        return avg_pool2(x)


class ResBlock(nn.Module):
    """guided-diffusion ResBlock (optionally up/down-sampling, FiLM-like scale-shift norm).

    h = in_conv(up/down(SiLU(GN(x)))); e = Linear(SiLU(emb));
    scale-shift: h = out_conv(Dropout(SiLU(GN(h) * (1 + scale) + shift)))  (scale, shift = e)
    otherwise:   h = out_conv(Dropout(SiLU(GN(h + e))));
    returns skip(up/down(x)) + h, skip = identity / 3x3 conv (use_conv) / 1x1 conv.
    """

    out_channels: Optional[int] = None
    dropout: float = 0.0
    use_conv: bool = False
    use_scale_shift_norm: bool = False
    up: bool = False
    down: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, emb, train: bool = False):
        channels = x.shape[-1]
        out_ch = self.out_channels or channels
        h = nn.silu(GroupNorm32(name="in_layers_0")(x))
        if self.up:
            h, x = upsample_nearest(h), upsample_nearest(x)
        elif self.down:
            h, x = avg_pool2(h), avg_pool2(x)
        h = conv2d(out_ch, channels, 3, dtype=self.dtype, name="in_layers_2")(h)
        # guided-diffusion's fp16 conversion touches convolutions only: this Linear stays float32
        emb_out = dense(2 * out_ch if self.use_scale_shift_norm else out_ch, emb.shape[-1],
                        name="emb_layers_1")(nn.silu(emb)).astype(h.dtype)
        emb_out = emb_out[:, None, None, :]
        out_norm = GroupNorm32(name="out_layers_0")
        if self.use_scale_shift_norm:
            scale, shift = jnp.split(emb_out, 2, axis=-1)
            h = out_norm(h) * (1 + scale) + shift
        else:
            h = out_norm(h + emb_out)
        h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
        h = conv2d(out_ch, out_ch, 3, zero=True, dtype=self.dtype, name="out_layers_3")(h)
        if out_ch == channels:
            skip = x
        else:
            kernel = 3 if self.use_conv else 1
            skip = conv2d(out_ch, channels, kernel, dtype=self.dtype, name="skip_connection")(x)
        return skip + h


def resolve_heads(channels: int, num_heads: int, num_head_channels: int) -> int:
    """AttentionBlock's head count: num_heads, or channels // num_head_channels when that is set."""
    if num_head_channels == -1:
        return num_heads
    if channels % num_head_channels:
        raise ValueError(f"q,k,v channels {channels} is not divisible by num_head_channels "
                         f"{num_head_channels}")
    return channels // num_head_channels


class AttentionBlock(nn.Module):
    """Self-attention over all spatial positions: x + proj_out(attn(qkv(GN(x))))."""

    num_heads: int = 1
    num_head_channels: int = -1
    use_new_attention_order: bool = False
    dtype: Dtype = jnp.float32
    attention_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        b, c = x.shape[0], x.shape[-1]
        heads = resolve_heads(c, self.num_heads, self.num_head_channels)
        h = x.reshape(b, -1, c)
        qkv = dense(3 * c, c, dtype=self.dtype, name="qkv")(GroupNorm32(name="norm")(h))
        a = qkv_attention(qkv, heads, legacy=not self.use_new_attention_order,
                          impl=self.attention_impl, field="AttentionBlock.attention_impl")
        a = dense(c, c, zero=True, dtype=self.dtype, name="proj_out")(a)
        return (h + a).reshape(x.shape)


class AttentionPool2d(nn.Module):
    """CLIP-style attention pooling (guided-diffusion AttentionPool2d): tokens = [mean, pixels]
    + positional embedding (stored (T, C) here, (C, T) in PyTorch), QKVAttention with
    C // num_heads_channels heads, c_proj, and the output at the mean token."""

    spacial_dim: int
    num_heads_channels: int
    output_dim: Optional[int] = None
    dtype: Dtype = jnp.float32
    attention_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        b, c = x.shape[0], x.shape[-1]
        h = x.reshape(b, -1, c)
        tokens = self.spacial_dim ** 2 + 1
        if h.shape[1] + 1 != tokens:
            raise ValueError(f"AttentionPool2d built for {self.spacial_dim}x{self.spacial_dim} "
                             f"inputs got {x.shape[1:3]}")
        h = jnp.concatenate([h.mean(axis=1, keepdims=True), h], axis=1)
        pos = self.param("positional_embedding", nn.initializers.normal(1.0 / np.sqrt(c)),
                         (tokens, c), jnp.float32)
        h = h + pos[None].astype(h.dtype)
        qkv = dense(3 * c, c, dtype=self.dtype, name="qkv_proj")(h)
        a = qkv_attention(qkv, c // self.num_heads_channels, legacy=False,
                          impl=self.attention_impl, field="AttentionPool2d.attention_impl")
        out = dense(self.output_dim or c, c, dtype=self.dtype, name="c_proj")(a)
        return out[:, 0]
