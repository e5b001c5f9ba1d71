"""The FID Inception-v3 network (pytorch-fid's `fid_inception_v3`) as a Flax Linen module.

This is the graph of TensorFlow's `inception-2015-12-05` as ported by pytorch-fid: torchvision's
Inception3 with `num_classes=1008`, no auxiliary head, and the FID variants of the Mixed blocks:

- `Mixed_5b/5c/5d` (FIDInceptionA), `Mixed_6b..6e` (FIDInceptionC) and `Mixed_7b` (FIDInceptionE_1)
  use a 3x3/1 average pool with padding 1 that excludes the padded zeros from the average
  (TensorFlow's pooling, `count_include_pad=False`);
- `Mixed_7c` (FIDInceptionE_2) uses a 3x3/1 *max* pool with padding 1 in its pool branch;
- `Mixed_6a` (InceptionB) and `Mixed_7a` (InceptionD) are torchvision's blocks unchanged.

Every convolution is torchvision's BasicConv2d: conv without bias, BatchNorm (eps 0.001, running
statistics, i.e. inference mode), ReLU. Layout is NHWC. The module expects images already
resized to 299x299 and scaled to [-1, 1] (see `dg_jax.eval.image_ops.inception_preprocess`) and
returns `(pool3, logits)`: the 2048-d global average of Mixed_7c and the 1008-way fc output.

Submodule names follow the torch state dict (`Conv2d_1a_3x3`, `Mixed_5b.branch1x1`, ...), with
`conv`/`bn` inside each BasicConv2d, so the mapping in `dg_jax.convert.inception` is by name.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

NUM_CLASSES = 1008
POOL3_DIM = 2048
INPUT_SIZE = 299


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class BasicConv2d(nn.Module):
    """relu(BN_eps=1e-3(conv(x))): torchvision's BasicConv2d, BatchNorm in inference mode."""
    features: int
    kernel_size: int | Sequence[int]
    stride: int = 1
    padding: int | Sequence[int] = 0
    dtype: Any = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        kh, kw = _pair(self.kernel_size)
        ph, pw = _pair(self.padding)
        x = nn.Conv(self.features, (kh, kw), strides=(self.stride, self.stride),
                    padding=((ph, ph), (pw, pw)), use_bias=False, dtype=self.dtype,
                    precision=self.precision, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, dtype=self.dtype, name="bn")(x)
        return nn.relu(x)


def _avg_pool_3x3_exclude_pad(x):
    """F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False) (TensorFlow's average)."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                       count_include_pad=False)


def _max_pool_3x3(x, stride: int, padding: int):
    """F.max_pool2d(x, 3, stride, padding); padding is -inf (never selected)."""
    return nn.max_pool(x, (3, 3), strides=(stride, stride),
                       padding=((padding, padding), (padding, padding)))


class _MixedBlock(nn.Module):
    """The fields every Mixed block shares (keyword-only, after the block's own fields)."""
    dtype: Any = dataclasses.field(default=jnp.float32, kw_only=True)
    precision: Any = dataclasses.field(default=None, kw_only=True)


def _conv(block: nn.Module, name: str, features: int, kernel_size, padding=0, stride: int = 1):
    """The BasicConv2d submodule `name` of `block`, in the block's dtype and precision."""
    return BasicConv2d(features, kernel_size, stride=stride, padding=padding, dtype=block.dtype,
                       precision=block.precision, name=name)


class FIDInceptionA(_MixedBlock):
    """pytorch-fid FIDInceptionA: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(excl. pad)-1x1."""
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = _conv(self, "branch1x1", 64, 1)(x)
        b5 = _conv(self, "branch5x5_1", 48, 1)(x)
        b5 = _conv(self, "branch5x5_2", 64, 5, 2)(b5)
        b3 = _conv(self, "branch3x3dbl_1", 64, 1)(x)
        b3 = _conv(self, "branch3x3dbl_2", 96, 3, 1)(b3)
        b3 = _conv(self, "branch3x3dbl_3", 96, 3, 1)(b3)
        bp = _conv(self, "branch_pool", self.pool_features, 1)(_avg_pool_3x3_exclude_pad(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_MixedBlock):
    """torchvision InceptionB (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3x3/2."""

    @nn.compact
    def __call__(self, x):
        b3 = _conv(self, "branch3x3", 384, 3, stride=2)(x)
        bd = _conv(self, "branch3x3dbl_1", 64, 1)(x)
        bd = _conv(self, "branch3x3dbl_2", 96, 3, 1)(bd)
        bd = _conv(self, "branch3x3dbl_3", 96, 3, stride=2)(bd)
        bp = _max_pool_3x3(x, 2, 0)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class FIDInceptionC(_MixedBlock):
    """pytorch-fid FIDInceptionC: factorised 7x7 branches, avgpool (excl. pad)-1x1."""
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        b1 = _conv(self, "branch1x1", 192, 1)(x)
        b7 = _conv(self, "branch7x7_1", c7, 1)(x)
        b7 = _conv(self, "branch7x7_2", c7, (1, 7), (0, 3))(b7)
        b7 = _conv(self, "branch7x7_3", 192, (7, 1), (3, 0))(b7)
        bd = _conv(self, "branch7x7dbl_1", c7, 1)(x)
        bd = _conv(self, "branch7x7dbl_2", c7, (7, 1), (3, 0))(bd)
        bd = _conv(self, "branch7x7dbl_3", c7, (1, 7), (0, 3))(bd)
        bd = _conv(self, "branch7x7dbl_4", c7, (7, 1), (3, 0))(bd)
        bd = _conv(self, "branch7x7dbl_5", 192, (1, 7), (0, 3))(bd)
        bp = _conv(self, "branch_pool", 192, 1)(_avg_pool_3x3_exclude_pad(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_MixedBlock):
    """torchvision InceptionD (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3x3/2."""

    @nn.compact
    def __call__(self, x):
        b3 = _conv(self, "branch3x3_1", 192, 1)(x)
        b3 = _conv(self, "branch3x3_2", 320, 3, stride=2)(b3)
        b7 = _conv(self, "branch7x7x3_1", 192, 1)(x)
        b7 = _conv(self, "branch7x7x3_2", 192, (1, 7), (0, 3))(b7)
        b7 = _conv(self, "branch7x7x3_3", 192, (7, 1), (3, 0))(b7)
        b7 = _conv(self, "branch7x7x3_4", 192, 3, stride=2)(b7)
        bp = _max_pool_3x3(x, 2, 0)
        return jnp.concatenate([b3, b7, bp], axis=-1)


class FIDInceptionE(_MixedBlock):
    """pytorch-fid FIDInceptionE_1 (`pool="avg"`, excluding padding) / FIDInceptionE_2 ("max")."""
    pool: str = "avg"

    @nn.compact
    def __call__(self, x):
        if self.pool not in ("avg", "max"):
            raise ValueError(f"FIDInceptionE pool must be 'avg' or 'max', got {self.pool!r}")
        b1 = _conv(self, "branch1x1", 320, 1)(x)
        b3 = _conv(self, "branch3x3_1", 384, 1)(x)
        b3 = jnp.concatenate([_conv(self, "branch3x3_2a", 384, (1, 3), (0, 1))(b3),
                              _conv(self, "branch3x3_2b", 384, (3, 1), (1, 0))(b3)], axis=-1)
        bd = _conv(self, "branch3x3dbl_1", 448, 1)(x)
        bd = _conv(self, "branch3x3dbl_2", 384, 3, 1)(bd)
        bd = jnp.concatenate([_conv(self, "branch3x3dbl_3a", 384, (1, 3), (0, 1))(bd),
                              _conv(self, "branch3x3dbl_3b", 384, (3, 1), (1, 0))(bd)], axis=-1)
        pooled = _avg_pool_3x3_exclude_pad(x) if self.pool == "avg" else _max_pool_3x3(x, 1, 1)
        bp = _conv(self, "branch_pool", 192, 1)(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
    """FID Inception-v3: NHWC images in [-1, 1] (299x299) -> (pool3 (B, 2048), logits (B, 1008)).

    Conv2d_1a..4a stem with two 3x3/2 max pools, Mixed_5b..5d (A), 6a (B), 6b..6e (C), 7a (D),
    7b (E, avg pool), 7c (E, max pool), global average pool (= pool3), fc 2048 -> 1008 (with bias,
    as pytorch-fid's `fc`; dropout is the identity at inference).
    """
    num_classes: int = NUM_CLASSES
    dtype: Any = jnp.float32
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        kw = dict(dtype=self.dtype, precision=self.precision)
        x = jnp.asarray(x, self.dtype)
        x = _conv(self, "Conv2d_1a_3x3", 32, 3, stride=2)(x)
        x = _conv(self, "Conv2d_2a_3x3", 32, 3)(x)
        x = _conv(self, "Conv2d_2b_3x3", 64, 3, 1)(x)
        x = _max_pool_3x3(x, 2, 0)
        x = _conv(self, "Conv2d_3b_1x1", 80, 1)(x)
        x = _conv(self, "Conv2d_4a_3x3", 192, 3)(x)
        x = _max_pool_3x3(x, 2, 0)
        x = FIDInceptionA(32, name="Mixed_5b", **kw)(x)
        x = FIDInceptionA(64, name="Mixed_5c", **kw)(x)
        x = FIDInceptionA(64, name="Mixed_5d", **kw)(x)
        x = InceptionB(name="Mixed_6a", **kw)(x)
        x = FIDInceptionC(128, name="Mixed_6b", **kw)(x)
        x = FIDInceptionC(160, name="Mixed_6c", **kw)(x)
        x = FIDInceptionC(160, name="Mixed_6d", **kw)(x)
        x = FIDInceptionC(192, name="Mixed_6e", **kw)(x)
        x = InceptionD(name="Mixed_7a", **kw)(x)
        x = FIDInceptionE("avg", name="Mixed_7b", **kw)(x)
        x = FIDInceptionE("max", name="Mixed_7c", **kw)(x)
        pool3 = jnp.mean(x, axis=(1, 2))
        logits = nn.Dense(self.num_classes, dtype=self.dtype, precision=self.precision,
                          name="fc")(pool3)
        return pool3, logits


def abstract_variables(model: FIDInceptionV3 | None = None) -> dict:
    """Shapes/dtypes of the variable tree (`params`, `batch_stats`) without computing anything."""
    model = model or FIDInceptionV3()
    x = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
