"""Fused attention where the backend has it: cuDNN's flash attention on CUDA GPUs.

Every attention layer of the EDM U-Nets and the ADM networks takes an `attention_impl` field:

- 'auto' (default): cuDNN's fused kernel (`jax.nn.dot_product_attention(implementation=
  'cudnn')`) when it applies: a CUDA GPU of compute capability 8.0 or later, 16-bit activations
  (the networks' `compute_dtype` 'bfloat16' / 'float16') and a head dimension that is a multiple
  of 8 and at most 128 (256 on Hopper and later), checked once per dtype and head dimension by
  compiling a tiny fused call and its gradient. Everywhere else, and always in float32, the
  layer's own einsum path, which follows the PyTorch reference's casts exactly (parity).
- 'xla': always the einsum path.
- 'cudnn': the fused kernel, and a ValueError naming the field where it does not apply.

The fused kernel computes the same function, softmax(q k^T * scale) v with float32 logits and
softmax, but rounds differently from the einsum path in 16 bits; it is never used in float32.
"""
from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp

ATTENTION_IMPLS = ("auto", "xla", "cudnn")


def _compute_capability() -> tuple[int, ...] | None:
    if jax.default_backend() != "gpu":
        return None
    cc = getattr(jax.devices()[0], "compute_capability", None)  # absent on ROCm
    if not cc:
        return None
    return tuple(int(p) for p in str(cc).split("."))


def fused_attention_unsupported(dtype, head_dim: int) -> str | None:
    """Why cuDNN's fused attention does not apply here, or None when it does."""
    if jnp.dtype(dtype) not in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)):
        return f"activations are {jnp.dtype(dtype).name}, the fused kernel needs 16-bit ones"
    cc = _compute_capability()
    if cc is None:
        return f"the backend is {jax.default_backend()}, not a CUDA GPU"
    if cc < (8, 0):
        return f"compute capability {cc} is below 8.0"
    h_max = 256 if cc >= (9, 0) else 128
    if head_dim % 8 or head_dim > h_max:
        return f"head dimension {head_dim} is not a multiple of 8 at most {h_max}"
    return _cudnn_probe(jnp.dtype(dtype).name, head_dim)


@functools.lru_cache(maxsize=None)
def _cudnn_probe(dtype: str, head_dim: int) -> str | None:
    """Compiles a tiny fused call and its gradient once per (dtype, head dimension): None when
    it compiles, else why not (an old cuDNN, say), so 'auto' falls back instead of failing."""
    q = jax.ShapeDtypeStruct((1, 16, 1, head_dim), dtype)

    def loss(x):
        return jnp.sum(fused_attention(x, x, x, 1.0).astype(jnp.float32))

    try:
        jax.jit(jax.grad(loss)).lower(q).compile()
    except Exception as err:  # noqa: BLE001 - any failure means: use the einsum path
        msg = f"cuDNN's fused attention does not compile here ({type(err).__name__}: {err})"
        warnings.warn(f"{msg}; attention_impl='auto' uses the einsum path", stacklevel=2)
        return msg
    return None


def use_fused_attention(impl: str, dtype, head_dim: int, field: str) -> bool:
    """Whether a layer with `attention_impl=impl` runs the fused kernel (decided at trace time)."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"{field}={impl!r}: choose one of {list(ATTENTION_IMPLS)}")
    if impl == "xla":
        return False
    reason = fused_attention_unsupported(dtype, head_dim)
    if impl == "cudnn" and reason is not None:
        raise ValueError(f"{field}='cudnn' but fused attention does not apply: {reason}; "
                         f"use 'auto' or 'xla'")
    return reason is None


def fused_attention(q, k, v, scale: float, implementation: str = "cudnn"):
    """softmax(q k^T * scale) v over (B, T, H, C) arrays, one fused call; returns (B, T, H, C).
    `implementation='xla'` runs the same call through XLA (how the tests check the layout)."""
    return jax.nn.dot_product_attention(q, k, v, scale=scale, implementation=implementation)
