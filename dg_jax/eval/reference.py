"""Reference datasets for FID: uint8 NHWC images from an .npz, an image folder or TFDS, and their
feature statistics in the EDM / DG reference `.npz` format (`mu`, `sigma`; see `stats_io`).

EDM's `fid.py ref --data=... --dest=ref.npz` computes mu / sigma of the Inception pool3 features
of every image of a dataset; `reference_statistics` does the same with any batch feature function
(by default the FID Inception, sharded over the device mesh). Grayscale images are repeated to
three channels before the Inception, as EDM's `fid.py` does.

Sources (each returns or yields uint8 NHWC arrays):
- `load_npz_images(path)`: DG / ADM layouts, `arr_0` (+ `arr_1` labels) or `samples` (+ `label`);
- `load_image_folder(path)`: every PNG / JPEG below a folder, sorted by relative path (needs PIL);
- `iter_tfds_images(name, split, data_dir, manual_dir)`: `tfds.load` (needs TensorFlow: the
  optional extra `pip install -e '.[tf]'`); never downloads unless `download=True`.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
from typing import Callable, Iterable, Iterator

import numpy as np

from dg_jax.data.shards import load_npz_dataset
from dg_jax.errors import UserError
from dg_jax.eval.features import extract_inception_features
from dg_jax.eval.stats_io import feature_statistics, save_stats

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


class ReferenceDataError(UserError, ValueError):
    """A reference dataset cannot be read (missing file, wrong layout, missing package)."""


def load_npz_images(path: str | os.PathLike) -> np.ndarray:
    """uint8 NHWC images of a dataset .npz in DG's layouts (`arr_0`, or `samples` + `label`)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ReferenceDataError(f"reference .npz {path} not found")
    images, _ = load_npz_dataset(path, field="--ref_npz")
    return images


def _require_pil():
    if importlib.util.find_spec("PIL") is None:
        raise ReferenceDataError("reading an image folder needs the package 'Pillow' "
                                 "(pip install Pillow)")
    from PIL import Image  # noqa: PLC0415  (Pillow is optional: image folders only)

    return Image


def list_image_files(folder: str | os.PathLike) -> list[pathlib.Path]:
    """PNG / JPEG files below `folder` (recursively), sorted by relative path."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ReferenceDataError(f"image folder {folder} not found")
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ReferenceDataError(f"image folder {folder} holds no {'/'.join(IMAGE_EXTENSIONS)} "
                                 "files")
    return files


def iter_image_folder(folder: str | os.PathLike, batch_size: int = 250
                      ) -> Iterator[np.ndarray]:
    """Yields uint8 NHWC RGB batches of the folder's images (all must share one size)."""
    image_mod = _require_pil()
    files = list_image_files(folder)
    size = None
    for start in range(0, len(files), batch_size):
        batch = []
        for f in files[start:start + batch_size]:
            with image_mod.open(f) as im:
                arr = np.asarray(im.convert("RGB"), np.uint8)
            if size is None:
                size = arr.shape
            elif arr.shape != size:
                raise ReferenceDataError(f"{f}: image of shape {arr.shape}, the folder's first "
                                         f"image is {size}; resize the dataset first")
            batch.append(arr)
        yield np.stack(batch)


def load_image_folder(folder: str | os.PathLike) -> np.ndarray:
    """All images of a folder as one uint8 (N, H, W, 3) array."""
    return np.concatenate(list(iter_image_folder(folder)))


def iter_tfds_images(name: str, split: str = "train", data_dir: str | None = None,
                     manual_dir: str | None = None, download: bool = False,
                     batch_size: int = 250, image_key: str = "image",
                     label_key: str | None = None) -> Iterator[np.ndarray]:
    """Yields uint8 NHWC batches of a TFDS dataset's `image_key` feature (with `label_key`,
    (images, int32 labels) pairs).

    `data_dir` is TFDS's prepared-data folder; `manual_dir` holds manually downloaded archives
    (TFDS's DownloadConfig.manual_dir) from which the dataset is prepared offline. Nothing is
    downloaded unless `download=True`. Needs TensorFlow: `pip install -e '.[tf]'`.
    """
    if importlib.util.find_spec("tensorflow") is None:
        raise ReferenceDataError("reading a TFDS dataset needs TensorFlow, which is not "
                                 "installed: pip install -e '.[tf]' (the optional extra 'tf')")
    if importlib.util.find_spec("tensorflow_datasets") is None:
        raise ReferenceDataError("reading a TFDS dataset needs tensorflow-datasets: "
                                 "pip install tensorflow-datasets")
    # imported here, not at the top: tensorflow_datasets needs TensorFlow (the optional extra
    # [tf]), which most installs lack and which takes seconds to import
    import tensorflow_datasets as tfds  # noqa: PLC0415

    kwargs = {}
    if manual_dir is not None:
        kwargs["download_and_prepare_kwargs"] = {
            "download_config": tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir))}
    ds = tfds.load(name, split=split, data_dir=data_dir,
                   download=download or manual_dir is not None, **kwargs)
    if label_key is None:
        ds = ds.map(lambda ex: ex[image_key]).batch(batch_size)
        for batch in tfds.as_numpy(ds):
            yield np.asarray(batch, np.uint8)
    else:
        ds = ds.map(lambda ex: (ex[image_key], ex[label_key])).batch(batch_size)
        for images, labels in tfds.as_numpy(ds):
            yield np.asarray(images, np.uint8), np.asarray(labels, np.int32)


def to_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC with C = 1 or 3 -> C = 3 (grayscale repeated, as EDM's fid.py)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected NHWC images with 1 or 3 channels, got {images.shape}")
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def rebatch(arrays: Iterable[np.ndarray], batch_size: int, limit: int | None = None
            ) -> Iterator[np.ndarray]:
    """Re-chunk a stream of arrays (e.g. shards) into batches of `batch_size` rows (the last may
    be smaller), stopping after `limit` rows in all if given."""
    buf, held, seen = [], 0, 0
    for a in arrays:
        if limit is not None:
            a = a[:max(limit - seen, 0)]
        seen += len(a)
        buf.append(a)
        held += len(a)
        while held >= batch_size:
            joined = np.concatenate(buf)
            yield joined[:batch_size]
            rest = joined[batch_size:]
            buf, held = ([rest] if len(rest) else []), len(rest)
        if limit is not None and seen >= limit:
            break
    if held:
        yield np.concatenate(buf)


def inception_feature_fn(variables, mesh=None, batch_size: int | None = None
                         ) -> Callable[[Iterable[np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """batches of uint8 NHWC -> (pool3 (N, 2048), logits (N, 1008)), sharded over `mesh`."""
    def run(batches):
        return extract_inception_features(variables, (to_rgb(b) for b in batches), mesh=mesh,
                                          batch_size=batch_size)

    return run


def reference_statistics(batches: Iterable[np.ndarray],
                         features_fn: Callable[[Iterable[np.ndarray]], tuple]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) in float64 of the first output of `features_fn(batches)` (the pool3 features):
    mu = mean, sigma = unbiased covariance, as EDM's and pytorch-fid's reference statistics."""
    features = features_fn(batches)[0]
    return feature_statistics(features)


def write_reference_statistics(path: str | os.PathLike, batches: Iterable[np.ndarray],
                               features_fn: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Compute (mu, sigma) of a dataset and write them as an EDM/DG reference .npz."""
    mu, sigma = reference_statistics(batches, features_fn)
    save_stats(path, mu, sigma)
    return mu, sigma
