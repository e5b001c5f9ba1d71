"""Layers of NVlabs EDM's `training/networks.py`, ported to Flax Linen in NHWC layout.

Parameter names follow the PyTorch modules (`weight`, `bias`, `freqs`) so a checkpoint maps by
name; layouts differ: convolution weights are HWIO (torch OIHW) and linear weights are
(in, out) (torch (out, in)). Layers compute in their input's dtype with float32 parameters cast
at use: float32 inputs give EDM's non-fp16 path; 16-bit inputs (the U-Nets' `compute_dtype`)
accumulate convolutions and matmuls in float32 and normalise in float32 (see models/precision.py).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from dg_jax.models.attention import fused_attention, use_fused_attention
from dg_jax.models.precision import accumulation_dtype, stats_dtype

_DN = ("NHWC", "HWIO", "NHWC")


@dataclasses.dataclass(frozen=True)
class Init:
    """EDM's `weight_init(shape, mode, fan_in, fan_out)` scaled by `weight` / `bias`:
    xavier_uniform sqrt(6/(fi+fo))*U(-1,1), xavier_normal sqrt(2/(fi+fo))*N(0,1),
    kaiming_uniform sqrt(3/fi)*U(-1,1), kaiming_normal sqrt(1/fi)*N(0,1)."""
    mode: str = "kaiming_normal"
    weight: float = 1.0
    bias: float = 0.0

    def initializer(self, fan_in: int, fan_out: int, scale: float):
        mode = self.mode

        def init(key, shape, dtype=jnp.float32):
            if mode == "xavier_uniform":
                v = math.sqrt(6 / (fan_in + fan_out)) * jax.random.uniform(key, shape, dtype, -1, 1)
            elif mode == "xavier_normal":
                v = math.sqrt(2 / (fan_in + fan_out)) * jax.random.normal(key, shape, dtype)
            elif mode == "kaiming_uniform":
                v = math.sqrt(3 / fan_in) * jax.random.uniform(key, shape, dtype, -1, 1)
            elif mode == "kaiming_normal":
                v = math.sqrt(1 / fan_in) * jax.random.normal(key, shape, dtype)
            else:
                raise ValueError(f'Invalid init mode "{mode}"')
            return (v * scale).astype(dtype)
        return init


def resample_filter_2d(resample_filter: Sequence[float]) -> np.ndarray:
    """EDM's FIR resampling kernel: outer(f, f) / sum(f)^2, float32, shape (k, k)."""
    f = np.asarray(resample_filter, np.float32)
    return (np.outer(f, f) / np.square(f.sum())).astype(np.float32)


def _depthwise(x, kernel_2d, *, stride: int, padding: int, transpose: bool):
    """torch conv2d / conv_transpose2d with `groups=C` and the same (k, k) kernel per channel.

    conv_transpose2d(stride s, padding p) is a stride-1 correlation of the s-dilated input with
    the flipped kernel and padding k-1-p on each side."""
    c = x.shape[-1]
    k = kernel_2d.shape[0]
    flat = np.asarray(kernel_2d)
    if k == stride and padding == 0 and np.all(flat == flat.flat[0]):
        # A box filter whose size is the stride (DDPM++'s [1, 1]): the strided sum, or the
        # repeat, of the same products, as reshapes; XLA's CPU grouped convolutions are slow.
        return _box_resample(x, float(flat.flat[0]), stride, transpose)
    if transpose:
        kernel_2d = kernel_2d[::-1, ::-1]
    w = jnp.tile(jnp.asarray(kernel_2d, x.dtype)[:, :, None, None], (1, 1, 1, c))
    if transpose:
        q = k - 1 - padding
        return lax.conv_general_dilated(x, w, (1, 1), [(q, q), (q, q)],
                                        lhs_dilation=(stride, stride), dimension_numbers=_DN,
                                        feature_group_count=c)
    return lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2,
                                    dimension_numbers=_DN, feature_group_count=c)


def _box_resample(x, value: float, stride: int, transpose: bool):
    """`_depthwise` for a (stride, stride) kernel of equal entries `value` and no padding:
    downsampling sums each stride x stride block (times `value`); the transpose repeats each
    pixel into one (times `value`)."""
    n, h, w, c = x.shape
    scale = jnp.asarray(value, x.dtype)
    if transpose:
        y = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, stride, w, stride, c))
        return y.reshape(n, h * stride, w * stride, c) * scale
    h2, w2 = h // stride, w // stride
    y = x[:, :h2 * stride, :w2 * stride].reshape(n, h2, stride, w2, stride, c)
    return y.sum(axis=(2, 4)) * scale


def _conv(x, w, padding: int):
    out = lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1), [(padding, padding)] * 2,
                                   dimension_numbers=_DN,
                                   preferred_element_type=accumulation_dtype(x.dtype))
    return out.astype(x.dtype)


class Linear(nn.Module):
    """EDM Linear: y = x @ weight + bias, weight (in, out)."""
    in_features: int
    out_features: int
    bias: bool = True
    init: Init = Init()

    @nn.compact
    def __call__(self, x):
        fi, fo = self.in_features, self.out_features
        w = self.param("weight", self.init.initializer(fi, fo, self.init.weight), (fi, fo))
        x = jnp.matmul(x, w.astype(x.dtype),
                       preferred_element_type=accumulation_dtype(x.dtype)).astype(x.dtype)
        if self.bias:
            b = self.param("bias", self.init.initializer(fi, fo, self.init.bias), (fo,))
            x = x + b.astype(x.dtype)
        return x


class Conv2d(nn.Module):
    """EDM Conv2d: optional 2x FIR up/downsampling (`resample_filter`), optionally fused with
    the convolution, then a `kernel`x`kernel` convolution (none when kernel == 0) and bias.

    Params: `weight` (k, k, in, out), `bias` (out,). Follows the EDM code embedded in the
    released pickles: fused up pads the transposed convolution by max(f_pad - w_pad, 0) and the
    convolution by max(w_pad - f_pad, 0)."""
    in_channels: int
    out_channels: int
    kernel: int
    bias: bool = True
    up: bool = False
    down: bool = False
    resample_filter: tuple = (1, 1)
    fused_resample: bool = False
    init: Init = Init()

    @nn.compact
    def __call__(self, x):
        assert not (self.up and self.down)
        ci, co, k = self.in_channels, self.out_channels, self.kernel
        fi, fo = ci * k * k, co * k * k
        w = b = None
        if k:
            w = self.param("weight", self.init.initializer(fi, fo, self.init.weight), (k, k, ci, co))
            if self.bias:
                b = self.param("bias", self.init.initializer(fi, fo, self.init.bias), (co,))
        f = resample_filter_2d(self.resample_filter) if (self.up or self.down) else None
        if f is not None and self.is_initializing():
            # torch's persistent `resample_filter` buffer, (1, 1, k, k); recorded at init only so
            # that checkpoint mapping can account for it. The forward pass uses the constant.
            self.variable("buffers", "resample_filter", lambda: jnp.asarray(f)[None, None])
        w_pad = k // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0

        if self.fused_resample and self.up and w is not None:
            x = _depthwise(x, f * 4, stride=2, padding=max(f_pad - w_pad, 0), transpose=True)
            x = _conv(x, w, max(w_pad - f_pad, 0))
        elif self.fused_resample and self.down and w is not None:
            x = _conv(x, w, w_pad + f_pad)
            x = _depthwise(x, f, stride=2, padding=0, transpose=False)
        else:
            if self.up:
                x = _depthwise(x, f * 4, stride=2, padding=f_pad, transpose=True)
            if self.down:
                x = _depthwise(x, f, stride=2, padding=f_pad, transpose=False)
            if w is not None:
                x = _conv(x, w, w_pad)
        if b is not None:
            x = x + b.astype(x.dtype)
        return x


def edm_num_groups(num_channels: int, num_groups: int = 32, min_channels_per_group: int = 4) -> int:
    """EDM's GroupNorm group count: min(num_groups, C // min_channels_per_group)."""
    return min(num_groups, num_channels // min_channels_per_group)


class GroupNorm(nn.Module):
    """torch.nn.functional.group_norm with EDM's group count; biased variance, affine weight/bias."""
    num_channels: int
    num_groups: int = 32
    min_channels_per_group: int = 4
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x):
        c = self.num_channels
        g = edm_num_groups(c, self.num_groups, self.min_channels_per_group)
        weight = self.param("weight", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        shape, dt = x.shape, stats_dtype(x.dtype)  # 16-bit inputs normalise in float32
        xg = x.astype(dt).reshape(shape[:-1] + (g, c // g))
        axes = tuple(range(1, xg.ndim - 2)) + (xg.ndim - 1,)
        mean = xg.mean(axis=axes, keepdims=True)
        var = jnp.square(xg - mean).mean(axis=axes, keepdims=True)
        xg = (xg - mean) * lax.rsqrt(var + self.eps)
        return (xg.reshape(shape) * weight.astype(dt) + bias.astype(dt)).astype(x.dtype)


class UNetBlock(nn.Module):
    """EDM UNetBlock (DDPM++/NCSN++/ADM union): GN-SiLU-conv0 (optionally resampling), the
    embedding as bias (adaptive_scale=False) or scale/shift (x * (scale + 1) + shift), GN-SiLU-
    dropout-conv1, skip (1x1 or resampling-only conv when shapes change), times skip_scale;
    then optional multi-head self-attention with qkv from a 1x1 conv, heads split as torch's
    reshape(N*heads, C/heads, 3, HW), softmax(q.k / sqrt(C/heads)), proj, residual, skip_scale."""
    in_channels: int
    out_channels: int
    emb_channels: int
    up: bool = False
    down: bool = False
    attention: bool = False
    num_heads: Optional[int] = None
    channels_per_head: int = 64
    dropout: float = 0.0
    skip_scale: float = 1.0
    eps: float = 1e-5
    resample_filter: tuple = (1, 1)
    resample_proj: bool = False
    adaptive_scale: bool = True
    init: Init = Init()
    init_zero: Init = Init(weight=0.0)
    init_attn: Optional[Init] = None
    attention_impl: str = "auto"  # models/attention.py: 'auto', 'xla' or 'cudnn'

    @property
    def heads(self) -> int:
        if not self.attention:
            return 0
        if self.num_heads is not None:
            return self.num_heads
        return self.out_channels // self.channels_per_head

    @nn.compact
    def __call__(self, x, emb, train: bool = False):
        ci, co = self.in_channels, self.out_channels
        orig = x
        x = GroupNorm(ci, eps=self.eps, name="norm0")(x)
        x = Conv2d(ci, co, 3, up=self.up, down=self.down, resample_filter=self.resample_filter,
                   init=self.init, name="conv0")(nn.silu(x))
        params = Linear(self.emb_channels, co * (2 if self.adaptive_scale else 1), init=self.init,
                        name="affine")(emb)[:, None, None, :].astype(x.dtype)
        norm1 = GroupNorm(co, eps=self.eps, name="norm1")
        if self.adaptive_scale:
            scale, shift = jnp.split(params, 2, axis=-1)
            x = nn.silu(shift + norm1(x) * (scale + 1))
        else:
            x = nn.silu(norm1(x + params))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = Conv2d(co, co, 3, init=self.init_zero, name="conv1")(x)
        if co != ci or self.up or self.down:
            kernel = 1 if (self.resample_proj or co != ci) else 0
            orig = Conv2d(ci, co, kernel, up=self.up, down=self.down,
                          resample_filter=self.resample_filter, init=self.init, name="skip")(orig)
        x = (x + orig) * self.skip_scale

        heads = self.heads
        if heads:
            n, h, w, _ = x.shape
            init_attn = self.init_attn if self.init_attn is not None else self.init
            qkv = Conv2d(co, co * 3, 1, init=init_attn, name="qkv")(
                GroupNorm(co, eps=self.eps, name="norm2")(x))
            qkv = qkv.reshape(n, h * w, heads, co // heads, 3)
            q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
            if use_fused_attention(self.attention_impl, q.dtype, co // heads,
                                   "UNetBlock.attention_impl"):
                a = fused_attention(q, k, v, float(1 / np.sqrt(co // heads)))
            else:
                k = k / np.sqrt(co // heads)
                logits = jnp.einsum("nqhc,nkhc->nhqk", q.astype(jnp.float32),
                                    k.astype(jnp.float32))
                wts = jax.nn.softmax(logits, axis=-1).astype(q.dtype)
                a = jnp.einsum("nhqk,nkhc->nqhc", wts, v,
                               preferred_element_type=accumulation_dtype(v.dtype))
            a = a.astype(v.dtype).reshape(n, h, w, co)
            x = (Conv2d(co, co, 1, init=self.init_zero, name="proj")(a) + x) * self.skip_scale
        return x


class PositionalEmbedding(nn.Module):
    """[cos(x f), sin(x f)] with f_i = (1/max_positions)^(i / (C/2 - endpoint)), float32."""
    num_channels: int
    max_positions: int = 10000
    endpoint: bool = False

    def __call__(self, x):
        half = self.num_channels // 2
        freqs = np.arange(half, dtype=np.float32) / np.float32(half - (1 if self.endpoint else 0))
        freqs = np.power(np.float32(1 / self.max_positions), freqs, dtype=np.float32)
        x = jnp.outer(x, jnp.asarray(freqs, x.dtype))
        return jnp.concatenate([jnp.cos(x), jnp.sin(x)], axis=1)


class FourierEmbedding(nn.Module):
    """[cos(2 pi x f), sin(2 pi x f)] with the fixed random buffer f ~ N(0, scale^2) (`freqs`;
    held in params so a checkpoint maps onto it, never trained: gradients are stopped)."""
    num_channels: int
    scale: float = 16.0

    @nn.compact
    def __call__(self, x):
        freqs = self.param("freqs", lambda key, shape: jax.random.normal(key, shape) * self.scale,
                           (self.num_channels // 2,))
        freqs = lax.stop_gradient(freqs)
        x = jnp.outer(x, (2 * np.pi * freqs).astype(x.dtype))
        return jnp.concatenate([jnp.cos(x), jnp.sin(x)], axis=1)
