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


def center_crop_arr(image, size: int) -> np.ndarray:
    """guided-diffusion's `center_crop_arr` (ADM's, DiT's and DG_imagenet's ImageNet
    preprocessing): halve with a BOX filter while the short side is >= 2 * size, resize the short
    side to `size` (BICUBIC), crop the centre size x size. `image`: a PIL image or a uint8 HWC
    array; returns uint8 (size, size, C)."""
    image_mod = _require_pil()
    im = image if isinstance(image, image_mod.Image) else image_mod.fromarray(np.asarray(image))
    while min(*im.size) >= 2 * size:
        im = im.resize(tuple(x // 2 for x in im.size), resample=image_mod.BOX)
    scale = size / min(*im.size)
    im = im.resize(tuple(round(x * scale) for x in im.size), resample=image_mod.BICUBIC)
    arr = np.asarray(im)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top:top + size, left:left + size]


def iter_image_folder(folder: str | os.PathLike, batch_size: int = 250, center_crop: int = 0
                      ) -> Iterator[np.ndarray]:
    """Yields uint8 NHWC RGB batches of the folder's images: all of one size, or with
    `center_crop` = S each `center_crop_arr`-ed to S x S."""
    image_mod = _require_pil()
    files = list_image_files(folder)
    size = None
    for start in range(0, len(files), batch_size):
        batch = []
        for f in files[start:start + batch_size]:
            with image_mod.open(f) as im:
                rgb = im.convert("RGB")
                arr = (center_crop_arr(rgb, center_crop) if center_crop
                       else np.asarray(rgb, np.uint8))
            if size is None:
                size = arr.shape
            elif arr.shape != size:
                raise ReferenceDataError(f"{f}: image of shape {arr.shape}, the folder's first "
                                         f"image is {size}; resize the dataset first (or "
                                         "center-crop it: data.center_crop=True)")
            batch.append(arr)
        yield np.stack(batch)


def load_image_folder(folder: str | os.PathLike, center_crop: int = 0) -> np.ndarray:
    """All images of a folder as one uint8 (N, H, W, 3) array (`center_crop` as in
    `iter_image_folder`)."""
    return np.concatenate(list(iter_image_folder(folder, center_crop=center_crop)))


def iter_tfds_images(name: str, split: str = "train", data_dir: str | None = None,
                     manual_dir: str | None = None, download: bool = False,
                     batch_size: int = 250, image_key: str = "image",
                     label_key: str | None = None, center_crop: int = 0
                     ) -> Iterator[np.ndarray]:
    """Yields uint8 NHWC batches of a TFDS dataset's `image_key` feature (with `label_key`,
    (images, int32 labels) pairs); `center_crop` = S: each image `center_crop_arr`-ed to S x S
    (for datasets of many sizes, e.g. imagenet2012).

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
    if center_crop:  # images of many sizes: cropped one by one, then batched here
        yield from _cropped_batches(tfds.as_numpy(ds), image_key, label_key, center_crop,
                                    batch_size)
    elif label_key is None:
        ds = ds.map(lambda ex: ex[image_key]).batch(batch_size)
        for batch in tfds.as_numpy(ds):
            yield np.asarray(batch, np.uint8)
    else:
        ds = ds.map(lambda ex: (ex[image_key], ex[label_key])).batch(batch_size)
        for images, labels in tfds.as_numpy(ds):
            yield np.asarray(images, np.uint8), np.asarray(labels, np.int32)


def _cropped_batches(examples, image_key: str, label_key: str | None, size: int,
                     batch_size: int):
    images, labels = [], []
    for ex in examples:
        images.append(center_crop_arr(np.asarray(ex[image_key], np.uint8), size))
        if label_key is not None:
            labels.append(int(ex[label_key]))
        if len(images) == batch_size:
            yield (np.stack(images) if label_key is None
                   else (np.stack(images), np.asarray(labels, np.int32)))
            images, labels = [], []
    if images:
        yield (np.stack(images) if label_key is None
               else (np.stack(images), np.asarray(labels, np.int32)))


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
