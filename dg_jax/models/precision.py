"""Compute dtypes for mixed precision: names in configs, dtypes in modules.

A network's `compute_dtype` ('float32', 'bfloat16' or 'float16') is the dtype of its
activations, matmuls and convolutions; parameters stay float32 (cast at use), normalisation
statistics and softmax are computed in float32, 16-bit matmuls/convolutions accumulate in
float32 (`accumulation_dtype`), and the network returns its input's dtype, so samplers keep
their float32 (or float64) state.
"""
from __future__ import annotations

from typing import Optional

import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def compute_dtype(name: str, field: str = "compute_dtype"):
    """The jnp dtype named `name`; a ValueError naming `field` otherwise."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"{field}={name!r}: choose one of {sorted(COMPUTE_DTYPES)}")
    return COMPUTE_DTYPES[name]


def accumulation_dtype(dtype) -> Optional[type]:
    """float32 for 16-bit float operands (preferred_element_type of dots and convolutions);
    None (the operand dtype) otherwise, so float32/float64 paths are unchanged."""
    return jnp.float32 if jnp.dtype(dtype).itemsize == 2 else None


def stats_dtype(dtype):
    """The dtype normalisation statistics are computed in: at least float32."""
    return jnp.promote_types(dtype, jnp.float32)
