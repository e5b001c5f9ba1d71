"""Training images of every experiment, through one entry point:

    load_images(source, *, path="", resolution, channels, split="train", num_classes=0,
                manual_dir=None, data_dir=None, rng=None, field="data", sources=SOURCES)
        -> (images float32 (N, resolution, resolution, channels) in [-1, 1], labels int32 (N,))
    load_from_config(d, *, rng=None, sources=SOURCES, field="data")   # the same, fields of `d`

Sources (the config field `data.source`; `field` is the config section errors name):

  digits     scikit-learn's 1,797 8x8 handwritten digits (embedded, offline), upsampled
             bilinearly to `resolution` (8 or a multiple of 8); labels 0..9
  npz        a dataset .npz at `path` in DG's layout: `arr_0` uint8 NHWC (+ `arr_1` labels), or
             `samples` (+ `label`, integers or one-hot); labels 0 where the file has none
  folder     every PNG / JPEG below the folder `path` (all of one size; needs Pillow), sorted by
             relative path; label = the index of the file's first-level subfolder among the
             sorted subfolder names (0 for files directly in `path`); channels=1 keeps the first
  tfds       the TFDS dataset named `path`, its `split`, prepared in `data_dir` or offline from
             the archives in `manual_dir` (never downloaded); labels from its 'label' feature
             when num_classes > 0; needs the optional extra [tf]
  cifar10    CIFAR-10's training set: the python batches (`path` = cifar-10-batches-py/,
             data_batch_1..5) or an .npz with `images` uint8 (N, 32, 32, 3) (+ `labels`)
  random     256 images of uniform noise, labels uniform in [0, num_classes): smoke runs only
  synthetic  512 random smooth blobs, labels 0: the offline stand-in of smoke variants
`random` and `synthetic` draw from `rng`, a numpy Generator the caller owns.

Each source is one reader, `_READERS[source](request) -> (images, labels or None)`; uint8
images are scaled to [-1, 1] by `shards.to_float` (the one such conversion; `shards.to_uint8`
is the inverse quantisation). A new data set is one more reader and `SOURCES` entry.

Errors are `ConfigError`s that name the field (`data.source`, `data.path`, `data.resolution`,
`data.channels`) and say what to do. The .npz reader lives in `dg_jax.data.shards`, the digits
in `dg_jax.data.digits`, and the image-folder and TFDS readers in `dg_jax.eval.reference`
(launch.evaluate computes reference statistics with them).
"""
from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import pickle
from typing import Any, Callable, Optional, Sequence

import numpy as np

from dg_jax.data.digits import load_digits_uint8
from dg_jax.data.shards import load_npz_dataset, to_float
from dg_jax.errors import ConfigError
from dg_jax.eval import reference

SOURCES = ("digits", "npz", "folder", "tfds", "cifar10", "random", "synthetic")
PATH_SOURCES = {"npz": "a dataset .npz", "folder": "a folder of PNG / JPEG images",
                "tfds": "the TFDS dataset name",
                "cifar10": "cifar-10-batches-py/ or an .npz with 'images'"}
RANDOM_SIZE = 256
SYNTHETIC_SIZE = 512
CIFAR10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_NPZ_LAYOUT = (("images", "labels"),)


@dataclasses.dataclass(frozen=True)
class _Request:
    source: str
    path: str
    resolution: int
    channels: int
    split: str
    num_classes: int
    manual_dir: Optional[str]
    data_dir: Optional[str]
    rng: Optional[np.random.Generator]
    field: str

    def name(self, key: str) -> str:
        return f"{self.field}.{key}"

    def generator(self) -> np.random.Generator:
        if not isinstance(self.rng, np.random.Generator):
            raise ValueError(f"{self.name('source')}={self.source!r} draws its images from rng: "
                             "pass a numpy Generator (np.random.default_rng(seed))")
        return self.rng


def load_images(source: str, *, path: str = "", resolution: int, channels: int,
                split: str = "train", num_classes: int = 0, manual_dir: Optional[str] = None,
                data_dir: Optional[str] = None, rng: Optional[np.random.Generator] = None,
                field: str = "data", sources: Sequence[str] = SOURCES
                ) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (N, resolution, resolution, channels) in [-1, 1], labels int32 (N,)) of
    `source` (see the module docstring); `sources` are those the caller accepts."""
    if source not in sources:
        raise ConfigError(f"unknown {field}.source {source!r}; choose one of {list(sources)}")
    if source in PATH_SOURCES and not path:
        raise ConfigError(f"{field}.source={source!r} reads {PATH_SOURCES[source]}: set "
                          f"{field}.path")
    request = _Request(source, str(path), int(resolution), int(channels), split,
                       int(num_classes), manual_dir or None, data_dir or None, rng, field)
    images, labels = _READERS[source](request)
    if images.dtype == np.uint8:
        images = to_float(images)
    if labels is None:
        labels = np.zeros(len(images), np.int32)
    expected = (request.resolution, request.resolution, request.channels)
    if images.shape[1:] != expected:
        where = f"{field}.path={request.path!r}" if path else f"{field}.source={source!r}"
        raise ConfigError(f"{where} holds images of shape {images.shape[1:]}, but "
                          f"{field}.resolution={resolution} / {field}.channels={channels} ask "
                          f"for {expected}; set them to the data's size or resize the data")
    return images, np.asarray(labels, np.int32)


def load_from_config(d: Any, *, rng: Optional[np.random.Generator] = None,
                     sources: Sequence[str] = SOURCES, field: str = "data"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """`load_images` with the fields of the config section `d`: source, resolution, channels,
    and where present path, num_classes, split, manual_dir, data_dir."""
    opt = lambda key, default: getattr(d, key, default)  # noqa: E731
    return load_images(d.source, path=opt("path", "") or "", resolution=d.resolution,
                       channels=d.channels, split=opt("split", "train") or "train",
                       num_classes=opt("num_classes", 0) or 0,
                       manual_dir=opt("manual_dir", None), data_dir=opt("data_dir", None),
                       rng=rng, field=field, sources=sources)


# ---------------------------------------------------------------- readers: (images, labels)


def _read_digits(r: _Request):
    return load_digits_uint8(r.resolution, field=r.name("resolution"))


def _read_npz(r: _Request):
    return load_npz_dataset(r.path, field=r.name("path"))


@contextlib.contextmanager
def _reference_errors(r: _Request):
    """`dg_jax.eval.reference`'s `ReferenceDataError`s as `ConfigError`s naming the fields."""
    try:
        yield
    except reference.ReferenceDataError as err:
        raise ConfigError(f"{r.name('source')}={r.source!r}, {r.name('path')}={r.path!r}: "
                          f"{err}") from None


def _read_folder(r: _Request):
    with _reference_errors(r):
        files = reference.list_image_files(r.path)
        images = reference.load_image_folder(r.path)
    if r.channels == 1:
        images = images[..., :1]
    parts = [f.relative_to(r.path).parts for f in files]
    classes = {c: i for i, c in enumerate(sorted({p[0] for p in parts if len(p) > 1}))}
    labels = np.asarray([classes[p[0]] if len(p) > 1 else 0 for p in parts], np.int32)
    return images, labels


def _read_tfds(r: _Request):
    # tensorflow_datasets is imported lazily, inside reference.iter_tfds_images: it needs
    # TensorFlow, the optional extra [tf], which the other sources (and most installs) lack.
    kwargs = dict(split=r.split, data_dir=r.data_dir, manual_dir=r.manual_dir)
    with _reference_errors(r):
        if r.num_classes:
            pairs = list(reference.iter_tfds_images(r.path, label_key="label", **kwargs))
            return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
        return np.concatenate(list(reference.iter_tfds_images(r.path, **kwargs))), None


def _read_cifar10(r: _Request):
    folder = pathlib.Path(r.path)
    if folder.suffix == ".npz":
        return load_npz_dataset(folder, field=r.name("path"), layouts=CIFAR10_NPZ_LAYOUT)
    missing = [b for b in CIFAR10_BATCHES if not (folder / b).is_file()]
    if missing:
        raise ConfigError(f"{r.name('path')}={r.path!r} lacks {missing}: point it at the "
                          "extracted cifar-10-batches-py/ folder (cifar-10-python.tar.gz) or an "
                          ".npz with 'images' uint8 (N, 32, 32, 3)")
    images, labels = [], []
    for name in CIFAR10_BATCHES:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the official CIFAR-10 python format
        images.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32)
                      .transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], np.int32))
    return np.concatenate(images), np.concatenate(labels)


def _read_random(r: _Request):
    rng = r.generator()
    shape = (RANDOM_SIZE, r.resolution, r.resolution, r.channels)
    images = rng.uniform(-1, 1, shape).astype(np.float32)
    return images, rng.integers(0, max(r.num_classes, 1), RANDOM_SIZE).astype(np.int32)


def _read_synthetic(r: _Request):
    """Random smooth blobs in [-1, 1]: one Gaussian bump of a random colour an image."""
    rng, n = r.generator(), SYNTHETIC_SIZE
    u = np.linspace(-1, 1, r.resolution)
    yy, xx = np.meshgrid(u, u, indexing="ij")
    c = rng.uniform(-0.6, 0.6, (n, 2, 1, 1))
    blob = np.exp(-((xx - c[:, 0]) ** 2 + (yy - c[:, 1]) ** 2) / 0.1)
    colour = rng.uniform(0.3, 1.0, (n, 1, 1, r.channels))
    return (2 * blob[..., None] * colour - 1).astype(np.float32), None


_READERS: dict[str, Callable[[_Request], tuple]] = {
    "digits": _read_digits, "npz": _read_npz, "folder": _read_folder, "tfds": _read_tfds,
    "cifar10": _read_cifar10, "random": _read_random, "synthetic": _read_synthetic}
