"""Analytic FLOP counts from a function's jaxpr, and model FLOP utilisation.

XLA's cost analysis misses work done in library calls (on GPU it does not count cuDNN
convolutions: for EDM's CIFAR-10 DDPM++ it reports about 1.2 GFLOP per image where the network
does about 42), so dg_jax counts FLOPs itself: 2 x the multiply-adds of every convolution and
matrix product in the traced program, with loop bodies (`lax.scan`) multiplied by their trip
count and `lax.cond` counted as its most expensive branch (so DG's guided branch counts whenever
it can run). Elementwise work is left out, as in the usual MFU convention.

    flops = count_flops(fn, *args)          # FLOPs of one call of fn(*args)
    mfu = flops / seconds / peak_flops(device_kind, dtype)
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.extend.core

# Dense peak FLOP/s by device kind (substring of jax.Device.device_kind) and compute dtype, from
# the vendors' data sheets (tensor cores / MXU, no sparsity). float32 on NVIDIA is the TF32
# tensor-core rate only where XLA uses TF32; plain float32 FMA rates are listed instead.
PEAK_TFLOPS = {
    "H100": {"bfloat16": 989.0, "float32": 67.0},
    "H200": {"bfloat16": 989.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "float32": 19.5},
    "TPU v4": {"bfloat16": 275.0, "float32": 275.0},
    "TPU v5 lite": {"bfloat16": 197.0, "float32": 197.0},
    "TPU v5p": {"bfloat16": 459.0, "float32": 459.0},
}


def peak_flops(device_kind: str, dtype: str) -> Optional[float]:
    """Peak FLOP/s of one device of this kind in `dtype`, or None when unknown (e.g. CPUs)."""
    for name, table in PEAK_TFLOPS.items():
        if name.lower() in device_kind.lower():
            return table.get(dtype, table["float32"]) * 1e12
    return None


def _conv_macs(eqn) -> int:
    rhs = eqn.invars[1].aval.shape
    out = eqn.outvars[0].aval.shape
    dn = eqn.params["dimension_numbers"]
    rhs_spec = dn.rhs_spec  # (out feature dim, in feature dim, spatial dims...)
    per_output = rhs[rhs_spec[1]] * math.prod(rhs[d] for d in rhs_spec[2:])
    return math.prod(out) * per_output


def _dot_macs(eqn) -> int:
    lhs = eqn.invars[0].aval.shape
    rhs = eqn.invars[1].aval.shape
    (_, rhs_contract), (_, rhs_batch) = eqn.params["dimension_numbers"]
    rhs_free = [d for d in range(len(rhs)) if d not in rhs_contract and d not in rhs_batch]
    return math.prod(lhs) * math.prod(rhs[d] for d in rhs_free)


def _sub_jaxprs(value):
    if isinstance(value, jax.extend.core.ClosedJaxpr):
        yield value.jaxpr
    elif isinstance(value, jax.extend.core.Jaxpr):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _sub_jaxprs(v)


def jaxpr_flops(jaxpr) -> int:
    """FLOPs (2 x multiply-adds of convolutions and dot products) of a jaxpr."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            total += 2 * _conv_macs(eqn)
        elif name == "dot_general":
            total += 2 * _dot_macs(eqn)
        elif name == "cond":
            total += max(jaxpr_flops(b.jaxpr) for b in eqn.params["branches"])
        else:
            inner = sum(jaxpr_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
            total += inner * (eqn.params["length"] if name == "scan" else 1)
    return total


def count_flops(fn: Callable, *args, **kwargs) -> int:
    """FLOPs of one call fn(*args, **kwargs), from its traced program (nothing is run)."""
    return jaxpr_flops(jax.make_jaxpr(lambda *a: fn(*a, **kwargs))(*args).jaxpr)
