"""Sample shards: numbered .npz files of uint8 NHWC images (+ int32 labels) and a manifest.

    DIR/samples_000000.npz   {'images': uint8 (n, H, W, C), 'labels': int32 (n,) (optional)}
    DIR/manifest.json        {"num_samples", "num_shards", "shard_size", "image_shape", "complete"}

A shard is written to a temporary file and renamed into place, so a killed job never leaves a
partial shard; readers ignore temporary files. A missing shard is an error that names it.
Each shard file's SHA-256 is written beside it first (`samples_000000.npz.sha256`) and collected
into the manifest ("sha256": {file: digest}); a resumed run regenerates a shard whose file does
not match its digest, and readers refuse a set whose files do not match the manifest's digests
or image counts, naming the file.

Multi-process runs write each shard as one part per process (no two processes touch a file):

    DIR/samples_000000.part001of002.npz  {'images', 'labels' (optional), 'rows': int64 (m,)}

`rows` are the part's positions inside the shard; readers put the parts back in that order, so
the set reads exactly as the single-process one. The manifest then also holds "num_processes".

API (stable; used by the image pipeline and `python -m launch.evaluate`):

    write_shard(dir, index, images_uint8_nhwc, labels=None) -> path   # atomic
    write_manifest(dir, num_samples=N, shard_size=S)                  # after all shards exist
    write_part(dir, index, process, num_processes, images, labels, rows)  # multi-process, atomic
    part_path(dir, index, process, num_processes), part_exists(...)
    write_manifest(dir, num_samples=N, shard_size=S, num_processes=P)  # after all parts exist
    read_manifest(dir) -> dict        # ShardError if absent, incomplete or malformed
    iter_shards(dir) -> iterator of (images, labels or None), shard by shard
    read_shards(dir) -> (images[:num_samples], labels[:num_samples] or None)
    shard_path(dir, index), shard_exists(dir, index)

Errors are `ShardError(ValueError)` naming the directory or shard file at fault.
"""
from __future__ import annotations

import json
import os
import pathlib
import zipfile
from typing import Iterator, Optional

import numpy as np

from dg_jax.errors import ConfigError, UserError
from dg_jax.integrity import file_sha256

SHARD_PATTERN = "samples_{:06d}.npz"
PART_PATTERN = "samples_{:06d}.part{:03d}of{:03d}.npz"
MANIFEST = "manifest.json"


class ShardError(UserError, ValueError):
    pass


def shard_path(directory, index: int) -> pathlib.Path:
    return pathlib.Path(directory) / SHARD_PATTERN.format(index)


def shard_exists(directory, index: int) -> bool:
    """True when shard `index` is on disk and matches the digest written with it (a truncated
    or altered shard counts as absent, so a resumed run writes it again)."""
    return file_is_intact(shard_path(directory, index))


def digest_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + ".sha256")


def file_is_intact(path: pathlib.Path) -> bool:
    side = digest_path(path)
    return path.is_file() and side.is_file() and side.read_text().strip() == file_sha256(path)


def write_shard(directory, index: int, images: np.ndarray, labels: Optional[np.ndarray] = None
                ) -> pathlib.Path:
    """Writes shard `index` atomically (temporary file, then rename)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ShardError(f"shard images must be uint8 NHWC, got {images.dtype} {images.shape}")
    if labels is not None and np.shape(labels) != images.shape[:1]:
        raise ShardError(f"shard {index}: labels of shape {np.shape(labels)} for "
                         f"{images.shape[0]} images")
    arrays = {"images": images}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, np.int32)
    return _save_atomic(shard_path(directory, index), arrays)


def _save_atomic(path: pathlib.Path, arrays: dict) -> pathlib.Path:
    """Writes the .npz through a temporary file; its digest goes beside it before the rename,
    so a shard file is never there without the digest it must match."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    side = digest_path(path)
    side_tmp = side.with_name(side.name + ".tmp")
    side_tmp.write_text(file_sha256(tmp) + "\n")
    side_tmp.replace(side)
    tmp.replace(path)
    return path


def save_npz(path: str | os.PathLike, **arrays) -> pathlib.Path:
    """Writes an .npz atomically with its digest beside it (see `load_npz`)."""
    return _save_atomic(pathlib.Path(path), arrays)


def load_npz(path: str | os.PathLike) -> dict:
    """The arrays of an .npz written by `save_npz`, after checking its digest (`ShardError`
    naming the file if it was altered or truncated)."""
    path = pathlib.Path(path)
    if not file_is_intact(path):
        raise ShardError(f"{path} is missing, or was altered or truncated since it was written "
                         "(SHA-256 differs); delete it to write it again")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def part_path(directory, index: int, process: int, num_processes: int) -> pathlib.Path:
    if not 0 <= process < num_processes:
        raise ShardError(f"process {process} out of range for num_processes={num_processes}")
    return pathlib.Path(directory) / PART_PATTERN.format(index, process, num_processes)


def part_exists(directory, index: int, process: int, num_processes: int) -> bool:
    """As `shard_exists`, for one process's part."""
    return file_is_intact(part_path(directory, index, process, num_processes))


def write_part(directory, index: int, process: int, num_processes: int, images: np.ndarray,
               labels: Optional[np.ndarray], rows: np.ndarray) -> pathlib.Path:
    """Writes process `process`'s part of shard `index` atomically; `rows` are the positions
    of its images inside the shard."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ShardError(f"shard images must be uint8 NHWC, got {images.dtype} {images.shape}")
    if np.shape(rows) != images.shape[:1]:
        raise ShardError(f"shard {index} part {process}: rows of shape {np.shape(rows)} for "
                         f"{images.shape[0]} images")
    arrays = {"images": images, "rows": np.asarray(rows, np.int64)}
    if labels is not None:
        if np.shape(labels) != images.shape[:1]:
            raise ShardError(f"shard {index} part {process}: labels of shape "
                             f"{np.shape(labels)} for {images.shape[0]} images")
        arrays["labels"] = np.asarray(labels, np.int32)
    return _save_atomic(part_path(directory, index, process, num_processes), arrays)


def _shard_files(directory, index: int, num_processes: int) -> list[pathlib.Path]:
    if num_processes == 1:
        return [shard_path(directory, index)]
    return [part_path(directory, index, p, num_processes) for p in range(num_processes)]


def write_manifest(directory, *, num_samples: int, shard_size: int,
                   num_processes: int = 1) -> None:
    """Records a complete shard set (after checking every shard, or every part, is there)."""
    directory = pathlib.Path(directory)
    num_shards = -(-num_samples // shard_size)
    files = [f for i in range(num_shards) for f in _shard_files(directory, i, num_processes)]
    missing = [f.name for f in files if not (f.is_file() and digest_path(f).is_file())]
    if missing:
        raise ShardError(f"{directory}: cannot write the manifest, missing shards {missing}")
    with np.load(files[0]) as first:
        image_shape = list(first["images"].shape[1:])
    manifest = {"num_samples": int(num_samples), "num_shards": num_shards,
                "shard_size": int(shard_size), "image_shape": image_shape, "complete": True,
                "sha256": {f.name: digest_path(f).read_text().strip() for f in files}}
    if num_processes != 1:
        manifest["num_processes"] = int(num_processes)
    text = json.dumps(manifest, indent=2)
    final = directory / MANIFEST
    if final.is_file() and final.read_text() == text:
        return  # a resumed run leaves a finished set untouched
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(text)
    tmp.replace(final)


MANIFEST_KEYS = ("num_samples", "num_shards", "shard_size", "image_shape", "complete")


def read_manifest(directory) -> dict:
    """The manifest of a complete shard set; ShardError if absent, malformed or incomplete."""
    path = pathlib.Path(directory) / MANIFEST
    if not path.is_file():
        raise ShardError(f"{directory} holds no {MANIFEST}: the sample set is incomplete or "
                         "was never written")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ShardError(f"{path}: not valid JSON ({err}); the sample set must be written "
                         "again") from err
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ShardError(f"{path}: missing keys {missing}")
    if manifest["complete"] is not True:
        raise ShardError(f"{path}: the sample set is marked incomplete")
    return manifest


def _expected_count(manifest: dict, index: int) -> int:
    size, n = int(manifest["shard_size"]), int(manifest["num_samples"])
    return min(size, n - index * size)


def iter_shards(directory) -> Iterator[tuple[np.ndarray, Optional[np.ndarray]]]:
    """Yields (images, labels) shard by shard, in order. Each file is checked against the
    manifest's digest and each shard's image and label counts against the manifest; errors
    name the file."""
    manifest = read_manifest(directory)
    num_processes = int(manifest.get("num_processes", 1))
    digests = manifest.get("sha256")  # absent in sets written before digests were recorded
    for i in range(manifest["num_shards"]):
        parts = []
        for path in _shard_files(directory, i, num_processes):
            if not path.is_file():
                raise ShardError(f"missing shard {path} (manifest lists {manifest['num_shards']}"
                                 f" shards of {num_processes} part(s))")
            if digests is not None and file_sha256(path) != digests.get(path.name):
                raise ShardError(f"shard {path} was altered or truncated since the set was "
                                 "written (SHA-256 differs from the manifest's); write the "
                                 "sample set again")
            try:
                with np.load(path) as z:
                    parts.append({k: z[k] for k in z.files})
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
                raise ShardError(f"shard {path} cannot be read ({err}); write the sample set "
                                 "again") from err
        path = _shard_files(directory, i, 1)[0]
        if num_processes == 1:
            images, labels = parts[0]["images"], parts[0].get("labels")
        else:
            order = np.argsort(np.concatenate([q["rows"] for q in parts]), kind="stable")
            images = np.concatenate([q["images"] for q in parts])[order]
            labels = (np.concatenate([q["labels"] for q in parts])[order]
                      if "labels" in parts[0] else None)
        if list(images.shape[1:]) != list(manifest["image_shape"]):
            raise ShardError(f"{path}: images of shape {images.shape[1:]}, manifest says "
                             f"{manifest['image_shape']}")
        expected = _expected_count(manifest, i)
        if len(images) != expected:
            raise ShardError(f"{path}: {len(images)} images, the manifest's counts "
                             f"(num_samples {manifest['num_samples']}, shard_size "
                             f"{manifest['shard_size']}) give {expected}")
        if labels is not None and len(labels) != len(images):
            raise ShardError(f"{path}: {len(labels)} labels for {len(images)} images")
        yield images, labels


def read_shards(directory) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """All images and labels of a complete shard set, truncated to num_samples."""
    manifest = read_manifest(directory)
    images, labels = [], []
    for im, lab in iter_shards(directory):
        images.append(im)
        if lab is not None:
            labels.append(lab)
    n = manifest["num_samples"]
    images = np.concatenate(images)
    if len(images) < n:
        raise ShardError(f"{directory}: shards hold {len(images)} images, manifest says {n}")
    images = images[:n]
    return images, (np.concatenate(labels)[:n] if labels else None)


def to_uint8(images) -> np.ndarray:
    """EDM's quantisation of samples in [-1, 1]: (x * 127.5 + 128).clip(0, 255) as uint8 (the one
    float -> uint8 conversion of dg_jax)."""
    return np.clip(np.asarray(images, np.float32) * 127.5 + 128.0, 0, 255).astype(np.uint8)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [-1, 1]: x / 127.5 - 1 (the one uint8 -> float conversion)."""
    return np.asarray(images, np.float32) / 127.5 - 1.0


# Dataset .npz layouts, (images key, labels key): DG's `np.savez(path, images, labels)` and the
# sample files of DG's / ADM's scripts (`samples`, one-hot or integer `label`).
DG_NPZ_LAYOUTS = (("arr_0", "arr_1"), ("samples", "label"))


def load_npz_dataset(path, *, field: str = "data.path", layouts=DG_NPZ_LAYOUTS
                     ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(uint8 NHWC images, int32 labels or None) of a dataset .npz in the first of `layouts`
    ((images key, labels key) pairs) it holds; one-hot labels become integers. `ConfigError`
    naming `field` when the file is missing or holds none of the layouts."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"{field}={str(path)!r}: file not found; point {field} at the "
                          "dataset .npz")
    with np.load(path) as z:
        found = next(((im, lab) for im, lab in layouts if im in z.files), None)
        if found is None:
            keys = " or ".join(repr(im) for im, _ in layouts)
            raise ConfigError(f"{field}={str(path)!r} holds no {keys} array (keys: {z.files}); "
                              f"write the images (uint8 NHWC) as {layouts[0][0]!r}")
        images = z[found[0]]
        labels = z[found[1]] if found[1] in z.files else None
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ConfigError(f"{field}={str(path)!r}: images must be uint8 NHWC, got {images.dtype} "
                          f"{images.shape}")
    if labels is not None and labels.ndim == 2:
        labels = np.argmax(labels, axis=-1)
    return images, (None if labels is None else labels.astype(np.int32))
