"""Stable Diffusion's VAE (diffusers `AutoencoderKL`, e.g. stabilityai/sd-vae-ft-mse) in Flax, NHWC.

Latent diffusion (DiT-G++ on ImageNet) trains and samples in this VAE's latent space: DG's
`data_tool.py` encodes images with `latent_dist.sample() * 0.18215` and `sample.py` decodes with
`vae.decode(samples / 0.18215)`. This is an exact port of diffusers' `AutoencoderKL` with the
SD layout, so the official weights load by name (`dg_jax.convert.sd_vae`):

    encode: conv_in -> down blocks (ResnetBlock2D x layers_per_block, then Downsample2D except in
            the last block) -> mid block (resnet, attention, resnet) -> GroupNorm-SiLU-conv_out
            (2 * latent_channels: mean and log-variance) -> quant_conv (1x1)
    decode: post_quant_conv (1x1) -> conv_in -> mid block -> up blocks over block_out_channels
            reversed (ResnetBlock2D x (layers_per_block + 1), then Upsample2D except in the
            last block) -> GroupNorm-SiLU-conv_out

ResnetBlock2D: GN-act-conv3x3-GN-act-conv3x3 plus the input (a 1x1 `conv_shortcut` when the
channel count changes). Downsample2D pads (0, 1, 0, 1) (right and bottom) and convolves 3x3 with
stride 2 and no padding; Upsample2D is nearest x2 then a 3x3 conv. The mid-block attention is
diffusers' `Attention` with a GroupNorm in front, one head of width `channels` (its
`attention_head_dim` is the channel count), softmax(q k^T / sqrt(width)) v, `to_out.0`, and the
residual added back (rescale factor 1). Every GroupNorm has `norm_num_groups` groups and eps
1e-6; the resnets use `act_fn`, the two output convs always SiLU (as diffusers does).

Submodules are named after the torch ones with `_<digits>` for `.<digits>` (Flax
`encoder/down_blocks_0/resnets_1/conv1/kernel` is torch `encoder.down_blocks.0.resnets.1.conv1
.weight`), the convention of `dg_jax.convert.adm`.

Use: `vae.apply(variables, images, method='encode') -> (mean, std)` of the diagonal Gaussian
posterior (std = exp(0.5 clamp(logvar, -30, 20)), unscaled latents), `method='encode_moments'`
-> (mean, clamped logvar), `method='decode'` on unscaled latents. `encode_to_latents` /
`decode_latents` apply `scaling_factor` (and `shift_factor`) as diffusers pipelines do, so every
pipeline uses one implementation. `compute_dtype` (None = float32, 'bfloat16', 'float16'):
activations and convolutions in that dtype with float32 parameters, normalisation statistics and
softmax (models/precision.py); outputs have the input's dtype. `attention_impl`: see
`dg_jax.models.attention` (SD's width-512 head exceeds the fused kernel's limit, so 'auto' keeps
the einsum path there). `force_upcast` (diffusers runs float16 VAEs in float32) has no field:
choose `compute_dtype` instead.
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from dg_jax.errors import ConfigError
from dg_jax.models.adm_blocks import (
    GroupNorm32,
    conv2d,
    dense,
    torch_bias_init,
    torch_kernel_init,
    upsample_nearest,
)
from dg_jax.models.attention import fused_attention, use_fused_attention
from dg_jax.models.precision import accumulation_dtype
from dg_jax.models.precision import compute_dtype as _compute_dtype

Dtype = Any
EPS = 1e-6  # every GroupNorm of diffusers' VAE Encoder / Decoder
LOGVAR_RANGE = (-30.0, 20.0)  # DiagonalGaussianDistribution's clamp


def _mish(x):
    return x * jnp.tanh(jax.nn.softplus(x))


# diffusers' `get_activation` names (ACT2CLS); torch's nn.GELU is the exact (erf) one
ACTIVATIONS = {"silu": nn.silu, "swish": nn.silu, "relu": nn.relu,
               "gelu": functools.partial(nn.gelu, approximate=False), "mish": _mish}
DOWN_BLOCK_TYPES = ("DownEncoderBlock2D",)
UP_BLOCK_TYPES = ("UpDecoderBlock2D",)
# The Stable Diffusion VAE's architecture (the config.json of stabilityai/sd-vae-ft-ema and
# -mse, DiT's and DG_imagenet's VAE): for building it with random weights (benchmarks).
SD_VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32,
    "act_fn": "silu", "sample_size": 256, "scaling_factor": 0.18215,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}


class ResnetBlock2D(nn.Module):
    """diffusers ResnetBlock2D without a time embedding: x + conv2(act(GN(conv1(act(GN(x))))));
    a 1x1 `conv_shortcut` maps x when the channel count changes (dropout 0, output scale 1)."""

    out_channels: int
    groups: int
    act_fn: str = "silu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.act_fn]
        c, co = x.shape[-1], self.out_channels
        h = act(GroupNorm32(self.groups, EPS, name="norm1")(x))
        h = conv2d(co, c, 3, dtype=self.dtype, name="conv1")(h)
        h = act(GroupNorm32(self.groups, EPS, name="norm2")(h))
        h = conv2d(co, co, 3, dtype=self.dtype, name="conv2")(h)
        if c != co:
            x = conv2d(co, c, 1, dtype=self.dtype, name="conv_shortcut")(x)
        return x + h


class Downsample2D(nn.Module):
    """diffusers Downsample2D(use_conv=True, padding=0): zero-pad right and bottom by one, then
    a 3x3 stride-2 conv `conv` with no padding (H -> floor((H - 2) / 2) + 1)."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        return nn.Conv(c, (3, 3), strides=(2, 2), padding=((0, 1), (0, 1)), dtype=self.dtype,
                       param_dtype=jnp.float32, kernel_init=torch_kernel_init(),
                       bias_init=torch_bias_init(9 * c), name="conv")(x)


class Upsample2D(nn.Module):
    """diffusers Upsample2D(use_conv=True): nearest x2, then a 3x3 conv `conv`."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        return conv2d(c, c, 3, dtype=self.dtype, name="conv")(upsample_nearest(x))


class VAEAttention(nn.Module):
    """diffusers `Attention` as the VAE mid block builds it: x + to_out.0(softmax(q k^T * d^-1/2) v)
    with q, k, v = to_q/to_k/to_v(GroupNorm(x)) over all H*W positions, `heads` heads of width
    d = C / heads (1 head in AutoencoderKL). Logits and softmax in float32."""

    groups: int
    heads: int = 1
    dtype: Dtype = jnp.float32
    attention_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        b, hh, ww, c = x.shape
        d = c // self.heads
        h = GroupNorm32(self.groups, EPS, name="group_norm")(x).reshape(b, hh * ww, c)
        q, k, v = (dense(c, c, dtype=self.dtype, name=f"to_{n}")(h).reshape(b, hh * ww, self.heads, d)
                   for n in "qkv")
        scale = 1.0 / math.sqrt(d)
        if use_fused_attention(self.attention_impl, q.dtype, d, "AutoencoderKL.attention_impl"):
            a = fused_attention(q, k, v, scale)
        else:
            logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32)
            w = jax.nn.softmax(logits.astype(jnp.float32) * scale, axis=-1).astype(v.dtype)
            a = jnp.einsum("bhqk,bkhd->bqhd", w, v,
                           preferred_element_type=accumulation_dtype(v.dtype))
        a = a.astype(v.dtype).reshape(b, hh * ww, c)
        out = dense(c, c, dtype=self.dtype, name="to_out_0")(a)
        return x + out.reshape(x.shape).astype(x.dtype)


class UNetMidBlock2D(nn.Module):
    """resnets_0, then (attentions_0 if `add_attention`), resnets_1; channels unchanged."""

    groups: int
    act_fn: str = "silu"
    add_attention: bool = True
    dtype: Dtype = jnp.float32
    attention_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = ResnetBlock2D(c, self.groups, self.act_fn, self.dtype, name="resnets_0")(x)
        if self.add_attention:
            x = VAEAttention(self.groups, dtype=self.dtype, attention_impl=self.attention_impl,
                             name="attentions_0")(x)
        return ResnetBlock2D(c, self.groups, self.act_fn, self.dtype, name="resnets_1")(x)


class _Coder(nn.Module):
    """The fields Encoder and Decoder share (see `AutoencoderKL`)."""

    block_out_channels: tuple[int, ...]
    layers_per_block: int
    groups: int
    act_fn: str
    mid_block_add_attention: bool
    out_channels: int
    dtype: Dtype = jnp.float32
    attention_impl: str = "auto"

    def mid_block(self, x):
        return UNetMidBlock2D(self.groups, self.act_fn, self.mid_block_add_attention, self.dtype,
                              self.attention_impl, name="mid_block")(x)

    def head(self, x):
        """conv_norm_out, SiLU (always, as diffusers' `conv_act`), conv_out."""
        x = nn.silu(GroupNorm32(self.groups, EPS, name="conv_norm_out")(x))
        return conv2d(self.out_channels, x.shape[-1], 3, dtype=self.dtype, name="conv_out")(x)


class CoderBlock2D(nn.Module):
    """diffusers' DownEncoderBlock2D (resample='down') and UpDecoderBlock2D (resample='up'):
    `resnets_<j>` (the first maps to `out_channels`), then `downsamplers_0` / `upsamplers_0`
    (resample=None: none, the last block of each coder)."""

    out_channels: int
    num_layers: int
    groups: int
    act_fn: str = "silu"
    resample: Optional[str] = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for j in range(self.num_layers):
            x = ResnetBlock2D(self.out_channels, self.groups, self.act_fn, self.dtype,
                              name=f"resnets_{j}")(x)
        if self.resample == "down":
            x = Downsample2D(self.dtype, name="downsamplers_0")(x)
        elif self.resample == "up":
            x = Upsample2D(self.dtype, name="upsamplers_0")(x)
        elif self.resample is not None:
            raise ValueError(f"CoderBlock2D.resample={self.resample!r}: 'down', 'up' or None")
        return x


class Encoder(_Coder):
    """diffusers Encoder (double_z): images -> 2 * latent channels (`out_channels` here)."""

    @nn.compact
    def __call__(self, x):
        chans = self.block_out_channels
        x = conv2d(chans[0], x.shape[-1], 3, dtype=self.dtype, name="conv_in")(x)
        for i, ch in enumerate(chans):
            x = CoderBlock2D(ch, self.layers_per_block, self.groups, self.act_fn,
                             resample="down" if i < len(chans) - 1 else None, dtype=self.dtype,
                             name=f"down_blocks_{i}")(x)
        return self.head(self.mid_block(x))


class Decoder(_Coder):
    """diffusers Decoder: latents -> images (`out_channels`); up blocks have one resnet more."""

    @nn.compact
    def __call__(self, z):
        chans = tuple(reversed(self.block_out_channels))
        x = conv2d(chans[0], z.shape[-1], 3, dtype=self.dtype, name="conv_in")(z)
        x = self.mid_block(x)
        for i, ch in enumerate(chans):
            x = CoderBlock2D(ch, self.layers_per_block + 1, self.groups, self.act_fn,
                             resample="up" if i < len(chans) - 1 else None, dtype=self.dtype,
                             name=f"up_blocks_{i}")(x)
        return self.head(x)


class AutoencoderKL(nn.Module):
    """diffusers AutoencoderKL (SD layout); fields keep the constructor's names and defaults.

    Build one from a diffusers config with `autoencoder_kl_from_config`. Methods (all NHWC):
    `encode_moments(images) -> (mean, logvar)` (logvar clamped to [-30, 20]),
    `encode(images) -> (mean, std)`, `decode(latents) -> images` (unscaled latents);
    `__call__(images)` decodes the posterior mean (used by `init` to build every parameter).
    `scaling_factor` / `shift_factor` are only recorded here, for `encode_to_latents` and
    `decode_latents`; `sample_size` is the training image size (the default for `init`)."""

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (64,)
    layers_per_block: int = 1
    norm_num_groups: int = 32
    act_fn: str = "silu"
    mid_block_add_attention: bool = True
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    sample_size: int = 32
    scaling_factor: float = 0.18215
    shift_factor: float = 0.0
    compute_dtype: Optional[str] = None  # None = float32; 'bfloat16', 'float16' (precision.py)
    attention_impl: str = "auto"  # models/attention.py: 'auto', 'xla' or 'cudnn'

    @property
    def dtype(self):
        if self.compute_dtype is None:
            return jnp.float32
        return _compute_dtype(self.compute_dtype, "AutoencoderKL.compute_dtype")

    @property
    def downsampling_factor(self) -> int:
        """Image size / latent size (for sizes divisible by it)."""
        return 2 ** (len(self.block_out_channels) - 1)

    def setup(self):
        dt, lc = self.dtype, self.latent_channels
        common = dict(block_out_channels=tuple(self.block_out_channels),
                      layers_per_block=self.layers_per_block, groups=self.norm_num_groups,
                      act_fn=self.act_fn, mid_block_add_attention=self.mid_block_add_attention,
                      dtype=dt, attention_impl=self.attention_impl)
        self.encoder = Encoder(out_channels=2 * lc, **common)
        self.decoder = Decoder(out_channels=self.out_channels, **common)
        self.quant_conv = conv2d(2 * lc, 2 * lc, 1, dtype=dt) if self.use_quant_conv else None
        self.post_quant_conv = conv2d(lc, lc, 1, dtype=dt) if self.use_post_quant_conv else None

    def encode_moments(self, images):
        """(mean, logvar) of the posterior, logvar clamped to [-30, 20], in the input's dtype."""
        moments = self.encoder(images.astype(self.dtype))
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        mean, logvar = jnp.split(moments.astype(jnp.promote_types(moments.dtype, jnp.float32)),
                                 2, axis=-1)
        logvar = jnp.clip(logvar, *LOGVAR_RANGE)
        return mean.astype(images.dtype), logvar.astype(images.dtype)

    def encode(self, images):
        """(mean, std) of the posterior: std = exp(0.5 logvar), in the input's dtype."""
        mean, logvar = self.encode_moments(images)
        std = jnp.exp(0.5 * logvar.astype(jnp.promote_types(logvar.dtype, jnp.float32)))
        return mean, std.astype(images.dtype)

    def decode(self, latents):
        """Images from unscaled latents (B, h, w, latent_channels), in the input's dtype."""
        z = latents.astype(self.dtype)
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z).astype(latents.dtype)

    def __call__(self, images):
        return self.decode(self.encode(images)[0])

    def example_images(self, batch: int = 1):
        """Zero images of `sample_size` (for `init` / `eval_shape`)."""
        s = int(self.sample_size)
        return jnp.zeros((batch, s, s, self.in_channels), jnp.float32)


# ------------------------------------------------------------------ diffusers config -> module

_FIELDS = ("in_channels", "out_channels", "latent_channels", "block_out_channels",
           "layers_per_block", "norm_num_groups", "act_fn", "mid_block_add_attention",
           "use_quant_conv", "use_post_quant_conv", "sample_size", "scaling_factor",
           "shift_factor", "down_block_types", "up_block_types", "latents_mean", "latents_std",
           "force_upcast")
_DEFAULTS = {f.name: f.default for f in AutoencoderKL.__dataclass_fields__.values()
             if f.name in _FIELDS}


def _positive_int(value, field: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {field}={value!r} must be a positive integer")
    return int(value)


def _flag(value, field: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {field}={value!r} must be true or false")
    return value


def _block_types(config: Mapping, field: str, allowed: tuple[str, ...], n: int, where: str):
    default = [allowed[0]] * n if field not in config else None
    types = config.get(field, default)
    if not isinstance(types, (list, tuple)) or len(types) != n:
        raise ConfigError(f"{where}: {field}={types!r} must list one block per entry of "
                          f"block_out_channels ({n})")
    for i, t in enumerate(types):
        name = t[7:] if isinstance(t, str) and t.startswith("UNetRes") else t  # as get_*_block
        if name not in allowed:
            raise ConfigError(f"{where}: {field}[{i}]={t!r} is not supported: this AutoencoderKL "
                              f"port has only {list(allowed)} (the SD VAE layout); attention "
                              "blocks outside the mid block need another port")


def autoencoder_kl_from_config(config: Mapping, *, compute_dtype: Optional[str] = None,
                               attention_impl: str = "auto",
                               where: str = "AutoencoderKL config") -> AutoencoderKL:
    """An `AutoencoderKL` from diffusers' constructor arguments (a `config.json`'s contents).

    Absent fields take diffusers' defaults; `_`-prefixed entries are ignored, other unknown
    ones warned about. A ConfigError naming `where` (the file) and the field is raised for
    values this port does not support: block types other than DownEncoderBlock2D /
    UpDecoderBlock2D, an act_fn diffusers does not know, channels not divisible by
    norm_num_groups, per-channel `latents_mean` / `latents_std`."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{where} must be a JSON object of AutoencoderKL arguments")
    cls = config.get("_class_name", "AutoencoderKL")
    if cls != "AutoencoderKL":
        raise ConfigError(f"{where}: _class_name={cls!r}; only diffusers' AutoencoderKL (the SD "
                          "VAE) is supported here")
    unknown = sorted(k for k in config if not str(k).startswith("_") and k not in _FIELDS)
    if unknown:
        warnings.warn(f"{where}: ignoring fields AutoencoderKL does not know: {unknown}",
                      stacklevel=2)
    get = lambda field: config.get(field, _DEFAULTS.get(field))  # noqa: E731
    chans = get("block_out_channels")
    if not isinstance(chans, (list, tuple)) or not chans:
        raise ConfigError(f"{where}: block_out_channels={chans!r} must be a non-empty list")
    chans = tuple(_positive_int(c, "block_out_channels", where) for c in chans)
    groups = _positive_int(get("norm_num_groups"), "norm_num_groups", where)
    bad = [c for c in chans if c % groups]
    if bad:
        raise ConfigError(f"{where}: norm_num_groups={groups} does not divide block_out_channels "
                          f"{bad}")
    _block_types(config, "down_block_types", DOWN_BLOCK_TYPES, len(chans), where)
    _block_types(config, "up_block_types", UP_BLOCK_TYPES, len(chans), where)
    act = get("act_fn")
    if act not in ACTIVATIONS:
        raise ConfigError(f"{where}: act_fn={act!r} is not one of diffusers' {sorted(ACTIVATIONS)}")
    for field in ("latents_mean", "latents_std"):
        if config.get(field) is not None:
            raise ConfigError(f"{where}: {field} is set: per-channel latent normalisation is not "
                              "supported (only scaling_factor and shift_factor)")
    sample_size = get("sample_size")
    if isinstance(sample_size, (list, tuple)) and sample_size:
        sample_size = sample_size[0]  # as diffusers' tiling does
    values = {}
    for field in ("scaling_factor", "shift_factor"):
        value = config.get(field)
        value = _DEFAULTS[field] if value is None else value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {field}={value!r} must be a finite number")
        values[field] = float(value)
    if values["scaling_factor"] == 0:
        raise ConfigError(f"{where}: scaling_factor must be non-zero")
    return AutoencoderKL(
        in_channels=_positive_int(get("in_channels"), "in_channels", where),
        out_channels=_positive_int(get("out_channels"), "out_channels", where),
        latent_channels=_positive_int(get("latent_channels"), "latent_channels", where),
        block_out_channels=chans,
        layers_per_block=_positive_int(get("layers_per_block"), "layers_per_block", where),
        norm_num_groups=groups, act_fn=act,
        mid_block_add_attention=_flag(get("mid_block_add_attention"), "mid_block_add_attention",
                                      where),
        use_quant_conv=_flag(get("use_quant_conv"), "use_quant_conv", where),
        use_post_quant_conv=_flag(get("use_post_quant_conv"), "use_post_quant_conv", where),
        sample_size=_positive_int(sample_size, "sample_size", where),
        compute_dtype=compute_dtype, attention_impl=attention_impl, **values)


# ------------------------------------------------------------------ pipelines' one implementation

def encode_to_latents(vae: AutoencoderKL, variables, images, rng=None, *,
                      scaling_factor: Optional[float] = None,
                      shift_factor: Optional[float] = None):
    """Diffusion-space latents of images in [-1, 1] (NHWC): (z - shift_factor) * scaling_factor
    with z a posterior sample (`rng` given; DG's `data_tool.py`: latent_dist.sample() * 0.18215)
    or the posterior mean (`rng` None). Factors default to the VAE's config values."""
    sf = vae.scaling_factor if scaling_factor is None else scaling_factor
    shift = vae.shift_factor if shift_factor is None else shift_factor
    mean, std = vae.apply(variables, images, method=AutoencoderKL.encode)
    z = mean
    if rng is not None:
        z = mean + std * jax.random.normal(rng, mean.shape, mean.dtype)
    if shift:
        z = z - shift
    return z * sf


def decode_latents(vae: AutoencoderKL, variables, latents, *,
                   scaling_factor: Optional[float] = None,
                   shift_factor: Optional[float] = None):
    """Images (NHWC, about [-1, 1]) from diffusion-space latents: decode(latents / scaling_factor
    + shift_factor) (DG's `sample.py`: vae.decode(samples / 0.18215)). Factors default to the
    VAE's config values."""
    sf = vae.scaling_factor if scaling_factor is None else scaling_factor
    shift = vae.shift_factor if shift_factor is None else shift_factor
    z = latents / sf
    if shift:
        z = z + shift
    return vae.apply(variables, z, method=AutoencoderKL.decode)
