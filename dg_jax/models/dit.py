"""DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers") in Flax, NHWC.

A port of the official `models.py` (facebookresearch/DiT; alsdudrla10/DG_imagenet's DiT-G++
uses the same file), with timm's PatchEmbed / Attention / Mlp written out:

- Patchify: Conv2d(kernel = stride = patch_size) over the (input_size / p)^2 grid, tokens
  row-major, then `+ pos_embed` (1, T, D).
- Conditioning c = t_emb + y_emb: the ORIGINAL integer DDPM timestep (0..999, unscaled) in a
  256-d `[cos(t f), sin(t f)]` table, then Linear-SiLU-Linear (`t_embedder.mlp.0/2`); a label
  table of num_classes + 1 rows when class_dropout_prob > 0, the last row (`y == num_classes`)
  being the null label of classifier-free guidance.
- `depth` adaLN-Zero blocks: SiLU -> Linear -> 6 chunks (shift/scale/gate for attention and
  MLP), LayerNorm without affine (eps 1e-6), modulate = x (1 + scale) + shift, fused qkv with
  bias split as (3, heads, head_dim), MLP with tanh-approximated GELU; a final layer with 2
  chunks (shift, scale) and a Linear to p*p*C'. Output NHWC (B, H, W, C') with C' = 2C when
  `learn_sigma` ([eps (C), variance values (C)]), else C.

Parameter paths map onto the PyTorch state-dict keys by turning each `_<digits>` of a module
name into `.<digits>` (`blocks_3/adaLN_modulation_1/kernel` <-> `blocks.3.adaLN_modulation.1
.weight`); `dg_jax.convert.dit` relies on this. `pos_embed` is a parameter-tree entry: the
official code fixes it to a 2-D sin-cos table (`requires_grad=False`) but stores it in the
state dict, and a checkpoint's value is what the network uses (it is loaded, never recomputed).
Fresh parameters follow the official `initialize_weights`: xavier-uniform Linear weights and
zero biases, the patch embedding xavier-uniform as a Linear, N(0, 0.02) label table and time
MLP weights, adaLN modulation and the final layer zero (adaLN-Zero), `pos_embed` the sin-cos
table.

The module is the eval-mode forward with the labels given: label dropout for CFG training is
`dg_jax.train.iddpm_train.drop_labels` (label -> num_classes), applied before the call.
`compute_dtype` (None = float32; 'bfloat16', 'float16') is the dtype of the activations and
matmuls, parameters stay float32, LayerNorm statistics and the attention softmax are float32,
and the output has the input's dtype (models/precision.py). `attention_impl` ('auto', 'xla',
'cudnn'): cuDNN's fused attention on GPUs in 16 bits under 'auto' (models/attention.py).
Classifier-free guidance, DiT's `forward_with_cfg` / `forward_with_dg`, is in
`dg_jax.guidance.dit_cfg`.
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.models.adm_blocks import qkv_attention, timestep_embedding
from dg_jax.models.precision import compute_dtype as _compute_dtype
from dg_jax.models.precision import stats_dtype

FREQUENCY_EMBEDDING_SIZE = 256  # TimestepEmbedder's frequency_embedding_size

# The published configurations (`DiT_models` of the official models.py); the other fields keep
# the constructor's defaults (input_size 32 = 256x256 images through the SD VAE, 4 latent
# channels, mlp_ratio 4, class_dropout_prob 0.1, 1000 classes, learn_sigma).
DIT_CONFIGS: dict[str, dict] = {
    f"DiT-{size}/{patch}": dict(depth=depth, hidden_size=width, patch_size=patch, num_heads=heads)
    for size, depth, width, heads in (("XL", 28, 1152, 16), ("L", 24, 1024, 16),
                                      ("B", 12, 768, 12), ("S", 12, 384, 6))
    for patch in (2, 4, 8)
}


# ----------------------------------------------------------------------------- initialisers

def get_2d_sincos_pos_embed(embed_dim: int, grid_size: int) -> np.ndarray:
    """The official fixed positional table (MAE's `get_2d_sincos_pos_embed`), float32 (T, D)
    with T = grid_size^2 row-major. As in the official code the first D/2 channels encode the
    token's column and the last D/2 its row (np.meshgrid puts w first), each as
    [sin(pos w_k), cos(pos w_k)] with w_k = 10000^(-k / (D/4)), computed in float64."""
    if embed_dim % 4:
        raise ValueError(f"DiT.hidden_size={embed_dim}: the 2-D sin-cos positional table needs "
                         "a multiple of 4")
    rows, cols = np.meshgrid(np.arange(grid_size, dtype=np.float64),
                             np.arange(grid_size, dtype=np.float64), indexing="ij")
    omega = 1.0 / 10000 ** (np.arange(embed_dim // 4, dtype=np.float64) / (embed_dim / 4.0))

    def one_d(pos):
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_d(cols), one_d(rows)], axis=1).astype(np.float32)


def _xavier_uniform():
    """torch's xavier_uniform_ on a Linear weight, for a Dense kernel (I, O) or a patch
    embedding seen as a Linear (kh, kw, I, O): fan_in = kh kw I, fan_out = O."""
    def init(key, shape, dtype=jnp.float32):
        return nn.initializers.variance_scaling(
            1.0, "fan_avg", "uniform", in_axis=tuple(range(len(shape) - 1)), out_axis=-1
        )(key, shape, dtype)
    return init


def _dense(features: int, dtype, name: str, *, zero: bool = False, std: float | None = None):
    if zero:
        kernel_init = nn.initializers.zeros
    elif std is not None:
        kernel_init = nn.initializers.normal(std)
    else:
        kernel_init = _xavier_uniform()
    return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32, kernel_init=kernel_init,
                    bias_init=nn.initializers.zeros, name=name)


# ----------------------------------------------------------------------------- layers

def layer_norm(x, epsilon: float = 1e-6):
    """nn.LayerNorm(elementwise_affine=False) over the last axis, statistics in float32 (or the
    input's wider dtype), the result in the input's dtype."""
    h = x.astype(stats_dtype(x.dtype))
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(h - mean), axis=-1, keepdims=True)
    return ((h - mean) * jax.lax.rsqrt(var + epsilon)).astype(x.dtype)


def modulate(x, shift, scale):
    """x (B, T, D) * (1 + scale) + shift, with shift and scale (B, D) per example."""
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    """timm's Attention(qkv_bias=True): fused qkv Linear, heads split as (3, heads, head_dim),
    softmax(q k^T / sqrt(head_dim)) v, then `proj`."""

    hidden_size: int
    num_heads: int
    dtype: jnp.dtype = jnp.float32
    attention_impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        qkv = _dense(3 * self.hidden_size, self.dtype, "qkv")(x)
        h = qkv_attention(qkv, self.num_heads, legacy=False, impl=self.attention_impl,
                          field="DiT.attention_impl")
        return _dense(self.hidden_size, self.dtype, "proj")(h)


class Mlp(nn.Module):
    """timm's Mlp: fc1 -> GELU (tanh approximation) -> fc2, no dropout."""

    hidden_size: int
    mlp_hidden: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = nn.gelu(_dense(self.mlp_hidden, self.dtype, "fc1")(x), approximate=True)
        return _dense(self.hidden_size, self.dtype, "fc2")(h)


class DiTBlock(nn.Module):
    """A DiT block with adaLN-Zero conditioning (`blocks.i`)."""

    hidden_size: int
    num_heads: int
    mlp_ratio: float = 4.0
    dtype: jnp.dtype = jnp.float32
    attention_impl: str = "auto"

    @nn.compact
    def __call__(self, x, c):
        mod = _dense(6 * self.hidden_size, self.dtype, "adaLN_modulation_1", zero=True)(nn.silu(c))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = jnp.split(mod, 6, axis=-1)
        attn = Attention(self.hidden_size, self.num_heads, self.dtype, self.attention_impl,
                         name="attn")
        x = x + gate_msa[:, None] * attn(modulate(layer_norm(x), shift_msa, scale_msa))
        mlp = Mlp(self.hidden_size, int(self.hidden_size * self.mlp_ratio), self.dtype, name="mlp")
        return x + gate_mlp[:, None] * mlp(modulate(layer_norm(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    """The final layer (`final_layer`): adaLN (shift, scale), then a Linear to p*p*C'."""

    hidden_size: int
    patch_size: int
    out_channels: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, c):
        mod = _dense(2 * self.hidden_size, self.dtype, "adaLN_modulation_1", zero=True)(nn.silu(c))
        shift, scale = jnp.split(mod, 2, axis=-1)
        x = modulate(layer_norm(x), shift, scale)
        p = self.patch_size
        return _dense(p * p * self.out_channels, self.dtype, "linear", zero=True)(x)


class TimestepEmbedder(nn.Module):
    """`t_embedder`: the 256-d sinusoidal table of the integer timestep (float32, GLIDE's
    `timestep_embedding`), then Linear-SiLU-Linear (`mlp.0`, `mlp.2`)."""

    hidden_size: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, t):
        freq = timestep_embedding(t, FREQUENCY_EMBEDDING_SIZE)
        h = _dense(self.hidden_size, self.dtype, "mlp_0", std=0.02)(freq)
        return _dense(self.hidden_size, self.dtype, "mlp_2", std=0.02)(nn.silu(h))


class LabelEmbedder(nn.Module):
    """`y_embedder`: the label table `embedding_table` looked up at integer labels (eval mode:
    no label dropout here; see `dg_jax.train.iddpm_train.drop_labels`)."""

    num_embeddings: int
    hidden_size: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, y):
        table = nn.Embed(self.num_embeddings, self.hidden_size, dtype=self.dtype,
                         param_dtype=jnp.float32, embedding_init=nn.initializers.normal(0.02),
                         name="embedding_table")
        return table(jnp.asarray(y).astype(jnp.int32))


class PatchEmbed(nn.Module):
    """timm's PatchEmbed (`x_embedder.proj`): Conv2d(kernel = stride = p, bias), tokens row-major
    over the (H/p, W/p) grid; the input must be input_size x input_size."""

    input_size: int
    patch_size: int
    hidden_size: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, _ = x.shape
        if h != self.input_size or w != self.input_size:
            raise ValueError(f"DiT.input_size={self.input_size}, but the input is {h}x{w} (NHWC "
                             f"shape {x.shape}); build the DiT for this size")
        p = self.patch_size
        x = nn.Conv(self.hidden_size, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype,
                    param_dtype=jnp.float32, kernel_init=_xavier_uniform(),
                    bias_init=nn.initializers.zeros, name="proj")(x)
        return x.reshape(b, -1, self.hidden_size)


def unpatchify(x, patch_size: int, channels: int):
    """(B, T, p*p*C) -> (B, H, W, C): tokens of a square grid, each patch's values ordered
    (p_row, p_col, channel) as the official `unpatchify` reads them."""
    b, t, _ = x.shape
    g = int(round(t ** 0.5))
    if g * g != t:
        raise ValueError(f"unpatchify: {t} tokens do not form a square grid")
    p = patch_size
    x = x.reshape(b, g, g, p, p, channels).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, g * p, g * p, channels)


# ----------------------------------------------------------------------------- the network

class DiT(nn.Module):
    """Diffusion Transformer: (x NHWC (B, H, W, C), t int (B,), y int (B,)) -> (B, H, W, C').

    Fields are the official constructor's (same names, defaults and meaning), plus
    `compute_dtype` and `attention_impl` (module docstring). `t` is the original DDPM timestep
    (respaced samplers map their indices first); `y == num_classes` is the null label (needs
    class_dropout_prob > 0, which gives the table its extra row).
    """

    input_size: int = 32
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    class_dropout_prob: float = 0.1
    num_classes: int = 1000
    learn_sigma: bool = True
    compute_dtype: Optional[str] = None  # None = float32; 'bfloat16', 'float16' (params float32)
    attention_impl: str = "auto"  # models/attention.py: 'auto' (cuDNN fused in 16 bits), 'xla'

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def num_patches(self) -> int:
        return (self.input_size // self.patch_size) ** 2

    @property
    def num_embeddings(self) -> int:
        """Rows of the label table: num_classes, plus the null label when class_dropout_prob > 0."""
        return self.num_classes + int(self.class_dropout_prob > 0)

    def _check(self, x):
        if self.input_size % self.patch_size:
            raise ValueError(f"DiT.input_size={self.input_size} is not a multiple of "
                             f"DiT.patch_size={self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"DiT.hidden_size={self.hidden_size} is not divisible by "
                             f"DiT.num_heads={self.num_heads}")
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(f"DiT expects NHWC input with in_channels={self.in_channels} "
                             f"channels, got shape {x.shape}")

    @nn.compact
    def __call__(self, x, t, y):
        self._check(x)
        dtype = (jnp.float32 if self.compute_dtype is None
                 else _compute_dtype(self.compute_dtype, "DiT.compute_dtype"))
        grid = self.input_size // self.patch_size
        pos_embed = self.param(
            "pos_embed",
            lambda key, shape: jnp.asarray(get_2d_sincos_pos_embed(self.hidden_size, grid))[None],
            (1, self.num_patches, self.hidden_size))
        h = PatchEmbed(self.input_size, self.patch_size, self.hidden_size, dtype,
                       name="x_embedder")(x.astype(dtype))
        h = h + pos_embed.astype(dtype)
        t_emb = TimestepEmbedder(self.hidden_size, dtype, name="t_embedder")(t)
        y_emb = LabelEmbedder(self.num_embeddings, self.hidden_size, dtype, name="y_embedder")(y)
        c = t_emb + y_emb
        for i in range(self.depth):
            h = DiTBlock(self.hidden_size, self.num_heads, self.mlp_ratio, dtype,
                         self.attention_impl, name=f"blocks_{i}")(h, c)
        h = FinalLayer(self.hidden_size, self.patch_size, self.out_channels, dtype,
                       name="final_layer")(h, c)
        return unpatchify(h, self.patch_size, self.out_channels).astype(x.dtype)


def dit_from_name(name: str, **overrides) -> DiT:
    """A DiT of a published configuration ('DiT-XL/2', ..., see `DIT_CONFIGS`), other fields
    (input_size, num_classes, compute_dtype, ...) from `overrides`."""
    if name not in DIT_CONFIGS:
        raise ValueError(f"unknown DiT configuration {name!r}; choose one of {list(DIT_CONFIGS)}")
    clash = sorted(set(overrides) & set(DIT_CONFIGS[name]))
    if clash:
        raise ValueError(f"{name} fixes {clash}; leave them out of the overrides or build "
                         "DiT(...) directly")
    return DiT(**DIT_CONFIGS[name], **overrides)
