"""Sampling into shards from one process or many (a multi-process `write_sample_shards`).

Every process draws the same global latents, labels and sampler noise key from the batch key
fold_in(key, shard * 100003 + batch), places only its own rows on its devices, runs the sharded
sampler, and reads back only the rows its devices hold; a shard's batches are all dispatched
before any is read back. With one process it writes `samples_NNNNNN.npz`; with several, each
process writes its own part of every shard (`shards.write_part`, no file touched by two
processes) and, after a barrier, process 0 alone checks every part and writes the manifest.
Readers (`shards.read_shards`) see the same images in the same order either way. The workdir
must be a file system all processes share.
"""
from __future__ import annotations

import pathlib

import jax
import numpy as np

from dg_jax.data import shards
from dg_jax.errors import check_finite_array
from dg_jax.metric_writers import Progress, log
from dg_jax.parallel import data_sharding, local_rows, put_global, sync

SHARD_STRIDE = 100003  # fold_in index of batch j of shard s: s * SHARD_STRIDE + j


def latents_and_labels(config, key, batch):
    """Global latents (batch, R, R, C), labels (or None) and the sampler's noise key (per-step
    noise of stochastic samplers: churn, boosting, DDPM) of one sampling batch."""
    shape = (batch, config.data.resolution, config.data.resolution, config.data.channels)
    k_lat, k_lab, k_noise = jax.random.split(key, 3)
    latents = jax.random.normal(k_lat, shape)
    labels = None
    if config.data.num_classes:
        labels = jax.random.randint(k_lab, (batch,), 0, config.data.num_classes)
    return latents, labels, k_noise


def _done(out_dir, s: int) -> bool:
    n, p = jax.process_count(), jax.process_index()
    return shards.shard_exists(out_dir, s) if n == 1 else shards.part_exists(out_dir, s, p, n)


def write_sample_shards(config, out_dir: pathlib.Path, sample_fn, num: int, batch: int,
                        shard_size: int, key, mesh, name: str) -> None:
    """Samples `num` images into numbered shards (this process's rows only) with
    `sample_fn(latents, labels, noise_key)`; shards (or parts) already on disk are skipped, so
    an interrupted run resumes where it stopped."""
    if shard_size % batch:
        raise ValueError(f"[{name}] shard_size={shard_size} must be a multiple of "
                         f"batch_size={batch}")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nproc, pid = jax.process_count(), jax.process_index()
    num_shards = -(-num // shard_size)
    sharding = data_sharding(mesh)
    todo = [s for s in range(num_shards) if not _done(out_dir, s)]
    if len(todo) < num_shards:
        log(f"[{name}] {num_shards - len(todo)} of {num_shards} shards already in {out_dir}")
    progress = Progress(name, sum(min(shard_size, num - s * shard_size) for s in todo))
    if todo:
        log(f"[{name}] sampling {progress.total} images into {out_dir} (the first batch "
            "includes compilation)")
    for s in todo:
        outs = []  # dispatch the whole shard first: no host sync between its batches
        for j in range(shard_size // batch):
            lat, lab, noise_key = latents_and_labels(
                config, jax.random.fold_in(key, s * SHARD_STRIDE + j), batch)
            outs.append((sample_fn(put_global(lat, sharding),
                                   None if lab is None else put_global(lab, sharding),
                                   noise_key), lab))
        images, labels, rows = [], [], []
        n = min(shard_size, num - s * shard_size)
        for j, (x, lab) in enumerate(outs):
            idx, values = local_rows(x)
            check_finite_array(values, name, f"samples of shard {s} batch {j}")
            images.append(shards.to_uint8(values))
            rows.append(j * batch + idx)
            if lab is not None:
                labels.append(np.asarray(lab)[idx])
            progress.update(min(batch, max(n - j * batch, 0)))
        rows = np.concatenate(rows)
        keep = rows < n
        images = np.concatenate(images)[keep]
        labels = np.concatenate(labels)[keep] if labels else None
        if nproc == 1:
            shards.write_shard(out_dir, s, images, labels)
        else:
            shards.write_part(out_dir, s, pid, nproc, images, labels, rows[keep])
    sync(f"{name}:shards_written:{out_dir}")
    if pid == 0:
        shards.write_manifest(out_dir, num_samples=num, shard_size=shard_size,
                              num_processes=nproc)
    sync(f"{name}:manifest_written:{out_dir}")
