"""Throughput of FID Inception feature extraction (uint8 images -> pool3 and logits).

`inception_throughput` times the same jitted, batch-sharded function that evaluation uses
(`dg_jax.eval.features.inception_features` under `make_sharded_feature_fn`): one compilation,
then `num_batches` batches of `batch_size` random uint8 images of side `image_size` (resized to
299 inside the function, as real samples are). Weights are random (He-scaled normal kernels, unit
BatchNorm) unless the pytorch-fid variables are given: throughput does not depend on their values.
"""
from __future__ import annotations

import time

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dg_jax.eval.features import data_mesh, inception_features, make_sharded_feature_fn
from dg_jax.models.inception import FIDInceptionV3, abstract_variables


def random_inception_variables(seed: int = 0, model: FIDInceptionV3 | None = None) -> dict:
    """Random FID-Inception variables with the real tree's shapes, built in NumPy (no init pass).

    Kernels ~ N(0, 1 / fan_in) (fan_in = product of all but the output axis), biases 0,
    BatchNorm scale 1, mean 0, var 1: activations keep a sane scale through the 94 convolutions.
    """
    rng = np.random.default_rng(seed)

    def make(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return (rng.standard_normal(leaf.shape, np.float32) / np.sqrt(fan_in))
        if name in ("scale", "var"):
            return np.ones(leaf.shape, np.float32)
        return np.zeros(leaf.shape, np.float32)

    return jax.tree_util.tree_map_with_path(make, abstract_variables(model))


def inception_throughput(batch_size: int, num_batches: int, image_size: int,
                         variables: dict | None = None, mesh: Mesh | None = None,
                         channels: int = 3, seed: int = 0) -> dict:
    """Images/s of sharded Inception features over `mesh` (default: all local devices).

    Returns {"images_per_second", "compile_seconds", "device", "num_devices", "batch_size",
    "num_batches", "image_size"}. `compile_seconds` is the lower+compile time; the timed loop
    starts after one untimed warm-up batch and ends when the last output is ready.
    `batch_size` must be a multiple of the mesh size (the batch is split evenly).
    """
    if batch_size < 1 or num_batches < 1:
        raise ValueError(f"batch_size and num_batches must be >= 1, got {batch_size}, "
                         f"{num_batches}")
    mesh = mesh or data_mesh()
    axis = mesh.axis_names[0]
    n_dev = mesh.shape[axis]
    if batch_size % n_dev:
        raise ValueError(f"batch_size={batch_size} is not a multiple of the {n_dev} devices in "
                         "the mesh")
    variables = random_inception_variables(seed) if variables is None else variables
    fn = make_sharded_feature_fn(lambda v, x: inception_features(v, x), mesh, axis)
    params = jax.device_put(variables, NamedSharding(mesh, P()))
    rng = np.random.default_rng(seed)
    shape = (batch_size, image_size, image_size, channels)
    batch_sharding = NamedSharding(mesh, P(axis))
    batches = [jax.device_put(rng.integers(0, 256, shape, dtype=np.uint8), batch_sharding)
               for _ in range(min(num_batches, 2))]

    start = time.perf_counter()
    compiled = fn.lower(params, batches[0]).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(params, batches[0]))  # warm-up (allocations, autotuning)

    start = time.perf_counter()
    out = None
    for i in range(num_batches):
        out = compiled(params, batches[i % len(batches)])
    jax.block_until_ready(out)
    elapsed = time.perf_counter() - start
    device = mesh.devices.flat[0]
    return {
        "images_per_second": batch_size * num_batches / elapsed,
        "compile_seconds": compile_seconds,
        "device": f"{device.platform}:{getattr(device, 'device_kind', '')} x{n_dev}",
        "num_devices": int(n_dev),
        "batch_size": int(batch_size),
        "num_batches": int(num_batches),
        "image_size": int(image_size),
    }
