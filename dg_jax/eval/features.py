"""Inception features of uint8 images, batch-sharded over a device mesh.

`inception_features` is the per-batch computation (pytorch-fid's preprocessing + FID
Inception-v3). `extract_features` runs any such `feature_fn(params, uint8_batch)` under `jax.jit`
over a `jax.sharding.Mesh`: the parameters are replicated, each batch is split along its leading
axis with `NamedSharding(mesh, P(axis))`, batches are zero-padded to one fixed size (a multiple
of the mesh size, so the function compiles once) and the padded rows are dropped from the output.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dg_jax.eval.image_ops import inception_preprocess
from dg_jax.metric_writers import Progress
from dg_jax.models.inception import FIDInceptionV3


def inception_features(variables, images_uint8, model: FIDInceptionV3 | None = None):
    """uint8 NHWC RGB images -> (pool3 (B, 2048), logits (B, 1008)) of the FID Inception."""
    model = model or FIDInceptionV3()
    return model.apply(variables, inception_preprocess(images_uint8, model.dtype))


def data_mesh(axis: str = "data", devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: all local devices) for batch sharding."""
    devices = np.asarray(jax.local_devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), (axis,))


def make_sharded_feature_fn(feature_fn: Callable, mesh: Mesh, axis: str = "data") -> Callable:
    """jit(feature_fn) with replicated params and the batch (and outputs) sharded along `axis`."""
    replicated = NamedSharding(mesh, P())
    batch_sharded = NamedSharding(mesh, P(axis))
    return jax.jit(feature_fn, in_shardings=(replicated, batch_sharded),
                   out_shardings=batch_sharded)


def extract_features(feature_fn: Callable[[Any, Any], Any], params, batches: Iterable,
                     mesh: Mesh | None = None, axis: str = "data",
                     batch_size: int | None = None, name: str = "features",
                     total: int | None = None) -> Any:
    """Apply `feature_fn(params, batch)` to every batch, sharded over `mesh`; concatenate outputs.

    `batches` yields arrays with a leading batch axis (e.g. uint8 NHWC). Every batch is padded to
    `batch_size` (default: the first batch's size), rounded up to a multiple of the mesh size;
    the padding rows are removed before concatenation. Returns the output pytree of `feature_fn`
    with NumPy leaves of leading size sum(len(batch)). Progress is printed as `[name]` lines
    (with the time left when `total`, the number of images, is given).
    """
    mesh = mesh or data_mesh(axis)
    n_shards = mesh.shape[axis]
    fn = make_sharded_feature_fn(feature_fn, mesh, axis)
    params = jax.device_put(params, NamedSharding(mesh, P()))
    batch_sharding = NamedSharding(mesh, P(axis))
    padded_size, outputs = None, []
    progress = Progress(name, total)
    for batch in batches:
        batch = np.asarray(batch)
        n = batch.shape[0]
        if padded_size is None:
            padded_size = max(batch_size or n, n)
            padded_size = -(-padded_size // n_shards) * n_shards
        if n > padded_size:
            raise ValueError(f"batch of {n} exceeds the padded batch size {padded_size}")
        if n < padded_size:
            pad = np.zeros((padded_size - n,) + batch.shape[1:], batch.dtype)
            batch = np.concatenate([batch, pad])
        out = fn(params, jax.device_put(batch, batch_sharding))
        outputs.append(jax.tree_util.tree_map(lambda a, n=n: np.asarray(a[:n]), out))
        progress.update(n)
    if not outputs:
        raise ValueError("extract_features got no batches")
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outputs)


def extract_inception_features(variables, batches: Iterable, mesh: Mesh | None = None,
                               batch_size: int | None = None,
                               model: FIDInceptionV3 | None = None, name: str = "inception",
                               total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pool3, logits) of all uint8 NHWC batches, sharded over `mesh` (default all devices)."""
    model = model or FIDInceptionV3()
    fn = lambda v, x: inception_features(v, x, model)  # noqa: E731
    return extract_features(fn, variables, batches, mesh=mesh, batch_size=batch_size, name=name,
                            total=total)

