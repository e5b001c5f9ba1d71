"""Shapes of per-example quantities: a time, sigma or weight given as one number or one per example.

Low level on purpose: imports nothing from dg_jax, so models, guidance and samplers can all use it.
"""
from __future__ import annotations

import jax.numpy as jnp


def per_example(value, batch: int, dtype=None):
    """`value` (a scalar, or one number per example: shape (), (1,) or (batch,)) as an array of
    shape (batch,), cast to `dtype` when given (else its own dtype)."""
    return jnp.broadcast_to(jnp.asarray(value, dtype).reshape(-1), (batch,))


def expand_like(value, x, dtype=None):
    """A scalar or per-example (B,) `value` shaped to broadcast against `x` (B, ...): (B,) ->
    (B, 1, ..., 1); a scalar stays a scalar. Cast to `dtype` when given."""
    value = jnp.asarray(value, dtype)
    return value.reshape(value.shape + (1,) * (x.ndim - value.ndim)) if value.ndim else value
