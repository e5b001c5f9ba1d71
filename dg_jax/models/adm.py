"""guided-diffusion's UNetModel and EncoderUNetModel (ADM, Dhariwal & Nichol 2021) in Flax, NHWC.

Exact ports of `guided_diffusion/unet.py` (openai/guided-diffusion), including the variant of
EncoderUNetModel used by Discriminator Guidance (alsdudrla10/DG): a label embedding added to the
time embedding (`num_classes`, DG's `condition`), continuous time multiplied inside
(`time_scale=999` for DG's VP tau in [0, 1]) and the middle-block features as an output
(`feature=True`). Builders from guided-diffusion's / DG's own flag names are in
`dg_jax.models.adm_flags`.

Fields keep the PyTorch constructors' names and meanings; `attention_resolutions` are
downsample factors (1 = full resolution). `use_fp16` runs the torso's convolutions
(input/middle/output blocks) in float16 with float32 parameters, GroupNorm, softmax and Linear
layers in float32, like `convert_to_fp16`; `compute_dtype` ('bfloat16', ...) overrides it with
the same split (see models/precision.py). `attention_impl` ('auto', 'xla', 'cudnn'; not a
PyTorch field): cuDNN's fused attention on GPUs in 16 bits under 'auto' (models/attention.py).
Gradient checkpointing (`use_checkpoint`) changes memory only and is not a field here.
"""
from __future__ import annotations

from typing import Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dg_jax.models.adm_blocks import (
    AttentionBlock,
    AttentionPool2d,
    Downsample,
    GroupNorm32,
    ResBlock,
    Upsample,
    conv2d,
    dense,
    timestep_embedding,
)
from dg_jax.models.precision import compute_dtype as _compute_dtype

POOLS = ("adaptive", "attention", "spatial", "spatial_v2")


def _time_embedding(timesteps, model_channels: int, time_scale: float):
    """emb = Linear(SiLU(Linear(timestep_embedding(t * time_scale, model_channels)))); called inside
    a compact method, so the layers become the caller's `time_embed_0` / `time_embed_2`."""
    t = jnp.asarray(timesteps)
    if time_scale != 1.0:
        t = t * time_scale  # DG: `timesteps * 999.` in the input's own precision, then float32
    emb = timestep_embedding(t, model_channels)
    dim = 4 * model_channels
    emb = dense(dim, model_channels, name="time_embed_0")(emb)
    return dense(dim, dim, name="time_embed_2")(nn.silu(emb))


def _network_dtype(module):
    """The torso's dtype: `compute_dtype` when set, else float16 iff `use_fp16`."""
    if module.compute_dtype is not None:
        return _compute_dtype(module.compute_dtype, f"{type(module).__name__}.compute_dtype")
    return jnp.float16 if module.use_fp16 else jnp.float32


def _label_indices(y):
    """Integer labels (N,) as given, or argmax of one-hot/probability rows (N, K) (DG)."""
    y = jnp.asarray(y)
    return jnp.argmax(y, axis=-1) if y.ndim == 2 else y


def _input_blocks(h, emb, *, model_channels, channel_mult, num_res_blocks,
                  attention_resolutions, dropout, conv_resample, num_heads, num_head_channels,
                  use_scale_shift_norm, resblock_updown, use_new_attention_order, dtype, train,
                  attention_impl="auto", hs: Optional[list] = None, means: Optional[list] = None):
    """The encoder half shared by UNetModel and EncoderUNetModel; returns (h, ds).

    Appends every block's output to `hs` (skip connections) and, for spatial pooling, its
    spatial mean to `means`.
    """
    def record(x):
        if hs is not None:
            hs.append(x)
        if means is not None:
            means.append(x.astype(jnp.float32).mean(axis=(1, 2)))

    ch = int(channel_mult[0] * model_channels)
    h = conv2d(ch, h.shape[-1], 3, dtype=dtype, name="input_blocks_0_0")(h)
    record(h)
    idx, ds = 1, 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            ch = int(mult * model_channels)
            h = ResBlock(ch, dropout, use_scale_shift_norm=use_scale_shift_norm, dtype=dtype,
                         name=f"input_blocks_{idx}_0")(h, emb, train)
            if ds in attention_resolutions:
                h = AttentionBlock(num_heads, num_head_channels, use_new_attention_order,
                                   dtype=dtype, attention_impl=attention_impl,
                                   name=f"input_blocks_{idx}_1")(h)
            record(h)
            idx += 1
        if level != len(channel_mult) - 1:
            if resblock_updown:
                h = ResBlock(ch, dropout, use_scale_shift_norm=use_scale_shift_norm, down=True,
                             dtype=dtype, name=f"input_blocks_{idx}_0")(h, emb, train)
            else:
                h = Downsample(conv_resample, ch, dtype=dtype, name=f"input_blocks_{idx}_0")(h)
            record(h)
            idx += 1
            ds *= 2
    return h, ds


def _middle_block(h, emb, *, dropout, num_heads, num_head_channels, use_scale_shift_norm,
                  use_new_attention_order, dtype, train, attention_impl="auto"):
    """ResBlock -> AttentionBlock -> ResBlock at the lowest resolution (`middle_block.{0,1,2}`)."""
    h = ResBlock(None, dropout, use_scale_shift_norm=use_scale_shift_norm, dtype=dtype,
                 name="middle_block_0")(h, emb, train)
    h = AttentionBlock(num_heads, num_head_channels, use_new_attention_order, dtype=dtype,
                       attention_impl=attention_impl, name="middle_block_1")(h)
    return ResBlock(None, dropout, use_scale_shift_norm=use_scale_shift_norm, dtype=dtype,
                    name="middle_block_2")(h, emb, train)


class _ADMNetwork(nn.Module):
    """The leading constructor fields of UNetModel and EncoderUNetModel, in PyTorch's order."""
    image_size: int
    in_channels: int
    model_channels: int
    out_channels: int
    num_res_blocks: int
    attention_resolutions: Sequence[int]
    dropout: float = 0.0
    channel_mult: Sequence[float] = (1, 2, 4, 8)
    conv_resample: bool = True


class UNetModel(_ADMNetwork):
    """guided-diffusion UNetModel: x (N, H, W, in_channels), t, y -> (N, H, W, out_channels).

    `timesteps` are the diffusion step indices (integers, or floats when rescaled); `y` integer
    labels iff `num_classes` is set. With learned sigmas `out_channels` is 2 * in_channels
    (eps and the variance interpolation v).
    """

    num_classes: Optional[int] = None
    use_fp16: bool = False
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    compute_dtype: Optional[str] = None  # overrides use_fp16: 'float32', 'bfloat16', 'float16'
    attention_impl: str = "auto"  # models/attention.py: 'auto' (cuDNN fused in 16 bits), 'xla'

    @nn.compact
    def __call__(self, x, timesteps, y=None, *, train: bool = False):
        if (y is not None) != (self.num_classes is not None):
            raise ValueError("UNetModel: pass y (class labels) if and only if num_classes is set")
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"UNetModel expects {self.in_channels} input channels (NHWC), got "
                             f"input of shape {x.shape}")
        dtype = _network_dtype(self)
        heads_up = self.num_heads if self.num_heads_upsample == -1 else self.num_heads_upsample
        emb = _time_embedding(timesteps, self.model_channels, 1.0)
        if self.num_classes is not None:
            emb = emb + nn.Embed(self.num_classes, 4 * self.model_channels,
                                 embedding_init=nn.initializers.normal(1.0),
                                 name="label_emb")(_label_indices(y))
        common = dict(dropout=self.dropout, num_head_channels=self.num_head_channels,
                      use_scale_shift_norm=self.use_scale_shift_norm,
                      use_new_attention_order=self.use_new_attention_order, dtype=dtype,
                      train=train, attention_impl=self.attention_impl)
        hs: list = []
        h, ds = _input_blocks(x.astype(dtype), emb, model_channels=self.model_channels,
                              channel_mult=self.channel_mult, num_res_blocks=self.num_res_blocks,
                              attention_resolutions=tuple(self.attention_resolutions),
                              conv_resample=self.conv_resample, num_heads=self.num_heads,
                              resblock_updown=self.resblock_updown, hs=hs, **common)
        h = _middle_block(h, emb, num_heads=self.num_heads, **common)
        idx = 0
        for level, mult in list(enumerate(self.channel_mult))[::-1]:
            for i in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, hs.pop()], axis=-1)
                ch = int(self.model_channels * mult)
                h = ResBlock(ch, self.dropout, use_scale_shift_norm=self.use_scale_shift_norm,
                             dtype=dtype, name=f"output_blocks_{idx}_0")(h, emb, train)
                sub = 1
                if ds in self.attention_resolutions:
                    h = AttentionBlock(heads_up, self.num_head_channels,
                                       self.use_new_attention_order, dtype=dtype,
                                       attention_impl=self.attention_impl,
                                       name=f"output_blocks_{idx}_{sub}")(h)
                    sub += 1
                if level and i == self.num_res_blocks:
                    name = f"output_blocks_{idx}_{sub}"
                    if self.resblock_updown:
                        h = ResBlock(ch, self.dropout, up=True, dtype=dtype, name=name,
                                     use_scale_shift_norm=self.use_scale_shift_norm)(h, emb, train)
                    else:
                        h = Upsample(self.conv_resample, ch, dtype=dtype, name=name)(h)
                    ds //= 2
                idx += 1
        h = h.astype(x.dtype)
        h = nn.silu(GroupNorm32(name="out_0")(h))
        ch0 = int(self.channel_mult[0] * self.model_channels)
        return conv2d(self.out_channels, ch0, 3, zero=True, name="out_2")(h)


class EncoderUNetModel(_ADMNetwork):
    """guided-diffusion EncoderUNetModel (the ADM classifier / DG discriminator): the UNet's
    encoder half and middle block, then a pooling head producing (N, out_channels).

    pool: 'adaptive' (GN, SiLU, global mean, 1x1 conv), 'attention' (GN, SiLU, AttentionPool2d
    at resolution image_size // ds; needs num_head_channels), 'spatial' / 'spatial_v2' (MLP on
    the spatial means of every block output, concatenated).
    DG's variant: `time_scale=999.` (timesteps are VP tau in [0, 1]), `num_classes` adds a label
    embedding to the time embedding (labels as integers or one-hot rows, argmax taken), and
    `feature=True` returns the middle-block output (N, H', W', C') instead of the head's output.
    """

    use_fp16: bool = False
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1  # unused by the encoder; kept as in the PyTorch constructor
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    pool: str = "adaptive"
    num_classes: Optional[int] = None
    time_scale: float = 1.0
    compute_dtype: Optional[str] = None  # overrides use_fp16: 'float32', 'bfloat16', 'float16'
    attention_impl: str = "auto"  # models/attention.py: 'auto' (cuDNN fused in 16 bits), 'xla'

    @nn.compact
    def __call__(self, x, timesteps, y=None, *, train: bool = False, feature: bool = False):
        if self.pool not in POOLS:
            raise ValueError(f"unexpected pool {self.pool!r}; choose one of {list(POOLS)}")
        if self.pool == "attention" and self.num_head_channels == -1:
            raise ValueError("pool='attention' needs num_head_channels != -1")
        if x.shape[-1] != self.in_channels:
            raise ValueError(f"EncoderUNetModel expects {self.in_channels} input channels (NHWC), "
                             f"got input of shape {x.shape}")
        dtype = _network_dtype(self)
        emb = _time_embedding(timesteps, self.model_channels, self.time_scale)
        if self.num_classes is not None:
            if y is None:
                raise ValueError("this EncoderUNetModel is class-conditional: pass labels y")
            emb = emb + nn.Embed(self.num_classes, 4 * self.model_channels,
                                 embedding_init=nn.initializers.normal(1.0),
                                 name="label_emb")(_label_indices(y))
        spatial = self.pool.startswith("spatial")
        means: Optional[list] = [] if spatial else None
        common = dict(dropout=self.dropout, num_heads=self.num_heads,
                      num_head_channels=self.num_head_channels,
                      use_scale_shift_norm=self.use_scale_shift_norm,
                      use_new_attention_order=self.use_new_attention_order, dtype=dtype,
                      train=train, attention_impl=self.attention_impl)
        h, ds = _input_blocks(x.astype(dtype), emb, model_channels=self.model_channels,
                              channel_mult=self.channel_mult, num_res_blocks=self.num_res_blocks,
                              attention_resolutions=tuple(self.attention_resolutions),
                              conv_resample=self.conv_resample,
                              resblock_updown=self.resblock_updown, means=means, **common)
        h = _middle_block(h, emb, **common)
        if feature:
            return h.astype(x.dtype)
        ch = h.shape[-1]
        if spatial:
            means.append(h.astype(jnp.float32).mean(axis=(1, 2)))
            z = jnp.concatenate(means, axis=-1).astype(x.dtype)
            width = z.shape[-1]
            z = dense(2048, width, name="out_0")(z)
            if self.pool == "spatial":
                return dense(self.out_channels, 2048, name="out_2")(nn.relu(z))
            z = nn.silu(GroupNorm32(name="out_1")(z))
            return dense(self.out_channels, 2048, name="out_3")(z)
        h = nn.silu(GroupNorm32(name="out_0")(h.astype(x.dtype)))
        if self.pool == "adaptive":
            h = h.mean(axis=(1, 2), keepdims=True)
            h = conv2d(self.out_channels, ch, 1, zero=True, name="out_3")(h)
            return h.reshape(h.shape[0], -1)
        return AttentionPool2d(self.image_size // ds, self.num_head_channels, self.out_channels,
                               attention_impl=self.attention_impl, name="out_2")(h)
