"""Data parallelism over a device mesh: one 'data' axis over all (global) devices.

Batches are sharded along their leading axis with NamedSharding(mesh, P('data')); parameters
and optimiser state are replicated (P()). jax.jit then compiles one SPMD program and inserts the
gradient all-reduce itself. Multi-host: every process calls the same functions; `shard_batch`
assembles the global array from each process's local slice.
"""
from __future__ import annotations

from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A 1-D mesh named 'data' over `devices` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_divisible(batch_size: int, mesh: Mesh, field: str) -> None:
    """Raises naming `field` when the global batch does not split evenly over the mesh."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"{field}={batch_size} is not divisible by the number of devices ({n}); "
                         f"choose a multiple of {n}")


def shard_batch(batch, mesh: Mesh):
    """Host arrays (this process's slice of the global batch) -> global arrays sharded on 'data'."""
    sharding = data_sharding(mesh)
    return jax.tree_util.tree_map(
        lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), batch)


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, replicated(mesh))


def process_slice(global_size: int) -> slice:
    """The rows of a global batch that this process feeds."""
    per = global_size // jax.process_count()
    start = jax.process_index() * per
    return slice(start, start + per)
