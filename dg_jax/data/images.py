"""Training images of every experiment, through one entry point:

    load_images(source, *, path="", resolution, channels, split="train", num_classes=0,
                manual_dir=None, data_dir=None, rng=None, subset_size=0, field="data",
                sources=SOURCES)
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
  fashion_mnist
             Zalando's Fashion-MNIST (MIT licence), 28x28 grayscale, labels 0..9: the four IDX
             files (.gz or uncompressed) in the folder `path`, by default those of Debian's
             package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist/); `split` 'train'
             (60,000) or 'test' (10,000); resolution 28, or 32 zero-padded by 2 pixels a side
             (black, -1); channels 1, or 3 (repeated). TFDS's copy stays the source `tfds` with
             path='fashion_mnist'
  random     256 images of uniform noise, labels uniform in [0, num_classes): smoke runs only
  synthetic  512 random smooth blobs, labels 0: the offline stand-in of smoke variants
`random` and `synthetic` draw from `rng`, a numpy Generator the caller owns.

`center_crop` (the config field `data.center_crop`; sources folder and tfds) brings images of
any size to `resolution` x `resolution` as guided-diffusion's `center_crop_arr` does (ADM's, DiT's
and DG_imagenet's ImageNet preprocessing; needs Pillow): BOX-halve while the short side is at
least twice the resolution, BICUBIC-resize the short side to it, crop the centre.

`subset_size` > 0 (the config field `data.subset_size`; 0 = every image) keeps a fixed
class-balanced subset of any source: subset_size / K images of each of the K labels present
(subset_size must be a multiple of K), drawn without replacement by `rng` (pass one of
`dg_jax.rng`, e.g. `rng.numpy(seed, "data", "subset")`: the same seed, the same subset) and kept
in the source's order.

Each source is one reader, `_READERS[source](request) -> (images, labels or None)`; uint8
images are scaled to [-1, 1] by `shards.to_float` (the one such conversion; `shards.to_uint8`
is the inverse quantisation). A new data set is one more reader and `SOURCES` entry.

Errors are `ConfigError`s that name the field (`data.source`, `data.path`, `data.resolution`,
`data.channels`, `data.split`, `data.subset_size`) and say what to do. The .npz reader lives in
`dg_jax.data.shards`, the digits in `dg_jax.data.digits`, the IDX reader (Fashion-MNIST) in
`dg_jax.data.idx`, and the image-folder and TFDS readers in `dg_jax.eval.reference`
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
from dg_jax.data.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxError, read_idx
from dg_jax.data.shards import load_npz_dataset, to_float
from dg_jax.errors import ConfigError
from dg_jax.eval import reference

SOURCES = ("digits", "npz", "folder", "tfds", "cifar10", "fashion_mnist", "random", "synthetic")
PATH_SOURCES = {"npz": "a dataset .npz", "folder": "a folder of PNG / JPEG images",
                "tfds": "the TFDS dataset name",
                "cifar10": "cifar-10-batches-py/ or an .npz with 'images'"}
CROP_SOURCES = ("folder", "tfds")  # data.center_crop: images of many sizes
RANDOM_SIZE = 256
SYNTHETIC_SIZE = 512
CIFAR10_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_NPZ_LAYOUT = (("images", "labels"),)
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_FILES = {split: (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
                       for split, prefix in (("train", "train"), ("test", "t10k"))}
FASHION_MNIST_CLASSES = 10
FASHION_MNIST_SIZE = 28


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
    center_crop: bool = False

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
                subset_size: int = 0, field: str = "data", sources: Sequence[str] = SOURCES,
                center_crop: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (N, resolution, resolution, channels) in [-1, 1], labels int32 (N,)) of
    `source` (see the module docstring); `sources` are those the caller accepts; `subset_size`
    > 0 keeps a class-balanced subset drawn by `rng`; `center_crop` (sources 'folder' and
    'tfds') brings images of any size to `resolution` by guided-diffusion's `center_crop_arr`."""
    if source not in sources:
        raise ConfigError(f"unknown {field}.source {source!r}; choose one of {list(sources)}")
    if center_crop and source not in CROP_SOURCES:
        raise ConfigError(f"{field}.center_crop=True applies to {field}.source in "
                          f"{list(CROP_SOURCES)}, not {source!r}; set it False")
    if source in PATH_SOURCES and not path:
        raise ConfigError(f"{field}.source={source!r} reads {PATH_SOURCES[source]}: set "
                          f"{field}.path")
    request = _Request(source, str(path), int(resolution), int(channels), split,
                       int(num_classes), manual_dir or None, data_dir or None, rng, field,
                       bool(center_crop))
    subset_size = _check_subset_size(subset_size, rng, field)
    images, labels = _READERS[source](request)
    if subset_size:
        keep = balanced_subset(labels if labels is not None else np.zeros(len(images), np.int32),
                               subset_size, rng, field=field)
        images, labels = images[keep], (labels[keep] if labels is not None else None)
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
    and where present path, num_classes, split, manual_dir, data_dir, subset_size, center_crop."""
    opt = lambda key, default: getattr(d, key, default)  # noqa: E731
    return load_images(d.source, path=opt("path", "") or "", resolution=d.resolution,
                       channels=d.channels, split=opt("split", "train") or "train",
                       num_classes=opt("num_classes", 0) or 0,
                       manual_dir=opt("manual_dir", None), data_dir=opt("data_dir", None),
                       rng=rng, subset_size=opt("subset_size", 0) or 0, field=field,
                       sources=sources, center_crop=bool(opt("center_crop", False)))


def _check_subset_size(subset_size: Any, rng: Any, field: str) -> int:
    """`subset_size` as an int, checked before any file is read."""
    if isinstance(subset_size, bool) or not isinstance(subset_size, (int, np.integer)) \
            or subset_size < 0:
        raise ConfigError(f"{field}.subset_size={subset_size!r} must be an integer >= 0 "
                          "(0 keeps every image)")
    if subset_size and not isinstance(rng, np.random.Generator):
        raise ValueError(f"{field}.subset_size={subset_size} draws its subset from rng: pass a "
                         "numpy Generator (dg_jax.rng.numpy(seed, 'data', 'subset'))")
    return int(subset_size)


def balanced_subset(labels: np.ndarray, subset_size: int, rng: Optional[np.random.Generator],
                    *, field: str = "data") -> np.ndarray:
    """Sorted indices of `subset_size` rows of `labels`, subset_size / K of each of the K labels
    present, drawn without replacement by `rng`; `ConfigError` naming `field`.subset_size when
    subset_size is no multiple of K or a label has fewer rows than its share."""
    name = f"{field}.subset_size"
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name}={subset_size} draws its subset from rng: pass a numpy "
                         "Generator (dg_jax.rng.numpy(seed, 'data', 'subset'))")
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if not len(classes):
        raise ConfigError(f"{name}={subset_size}: the data holds no images to draw a subset of")
    if subset_size % len(classes):
        raise ConfigError(f"{name}={subset_size} must be a multiple of the number of classes, "
                          f"{len(classes)}, so that every class has as many images")
    share = subset_size // len(classes)
    if share > counts.min():
        raise ConfigError(f"{name}={subset_size} asks for {share} images of each of the "
                          f"{len(classes)} classes, but class {classes[counts.argmin()]} has only "
                          f"{counts.min()}: lower {name} (at most {counts.min() * len(classes)})")
    picks = [rng.choice(np.flatnonzero(labels == c), share, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


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
        images = reference.load_image_folder(r.path,
                                             center_crop=r.resolution if r.center_crop else 0)
    if r.channels == 1:
        images = images[..., :1]
    parts = [f.relative_to(r.path).parts for f in files]
    classes = {c: i for i, c in enumerate(sorted({p[0] for p in parts if len(p) > 1}))}
    labels = np.asarray([classes[p[0]] if len(p) > 1 else 0 for p in parts], np.int32)
    return images, labels


def _read_tfds(r: _Request):
    # tensorflow_datasets is imported lazily, inside reference.iter_tfds_images: it needs
    # TensorFlow, the optional extra [tf], which the other sources (and most installs) lack.
    kwargs = dict(split=r.split, data_dir=r.data_dir, manual_dir=r.manual_dir,
                  center_crop=r.resolution if r.center_crop else 0)
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


def _has_fashion_files(folder: pathlib.Path) -> bool:
    return all(any((folder / n).is_file() for n in (stem + ".gz", stem))
               for pair in FASHION_MNIST_FILES.values() for stem in pair)


def fashion_mnist_folder(export_dir: str | pathlib.Path) -> str:
    """A folder with Fashion-MNIST's four IDX files for `data.path`: Debian's
    dataset-fashion-mnist folder when it is installed, else `export_dir` holding TFDS's
    `fashion_mnist` written as IDX files (once; TFDS downloads it where it can, e.g. on Colab;
    needs tensorflow-datasets and TensorFlow)."""
    if _has_fashion_files(pathlib.Path(FASHION_MNIST_DIR)):
        return FASHION_MNIST_DIR
    out = pathlib.Path(export_dir)
    if _has_fashion_files(out):
        return str(out)
    try:
        import tensorflow_datasets as tfds  # noqa: PLC0415  (optional: only without Debian's)
    except ImportError:
        raise ConfigError(f"Fashion-MNIST is not in {FASHION_MNIST_DIR} and tensorflow-datasets "
                          f"cannot be imported: `apt-get install -y {FASHION_MNIST_PACKAGE}`, "
                          "or pip install tensorflow tensorflow-datasets") from None
    from dg_jax.data.idx import write_idx  # noqa: PLC0415  (only when exporting)

    out.mkdir(parents=True, exist_ok=True)
    for split, (images_stem, labels_stem) in FASHION_MNIST_FILES.items():
        data = tfds.as_numpy(tfds.load("fashion_mnist", split=split, batch_size=-1))
        write_idx(out / f"{labels_stem}.gz", np.asarray(data["label"], np.uint8))
        write_idx(out / f"{images_stem}.gz", np.asarray(data["image"], np.uint8)[..., 0])
    return str(out)


def _read_fashion_mnist(r: _Request):
    """uint8 (N, 28 or 32, 28 or 32, 1 or 3) images and their labels of `r.split`."""
    if r.split not in FASHION_MNIST_FILES:
        raise ConfigError(f"{r.name('split')}={r.split!r}: {r.name('source')}='fashion_mnist' has "
                          f"the splits {list(FASHION_MNIST_FILES)}")
    pad = (r.resolution - FASHION_MNIST_SIZE) // 2
    if r.resolution not in (FASHION_MNIST_SIZE, FASHION_MNIST_SIZE + 4):
        raise ConfigError(f"{r.name('resolution')}={r.resolution}: "
                          f"{r.name('source')}='fashion_mnist' is 28x28; set 28, or 32 for the "
                          "images zero-padded by 2 pixels a side")
    if r.channels not in (1, 3):
        raise ConfigError(f"{r.name('channels')}={r.channels}: {r.name('source')}='fashion_mnist' "
                          "is grayscale; set 1, or 3 for the channel repeated")
    folder = pathlib.Path(r.path or FASHION_MNIST_DIR)
    where = f"{r.name('path')}={r.path!r}" if r.path else f"the default folder {folder}"
    paths = []
    for stem in FASHION_MNIST_FILES[r.split]:
        found = [folder / name for name in (stem + ".gz", stem) if (folder / name).is_file()]
        if not found:
            four = ", ".join(f"{s}.gz" for pair in FASHION_MNIST_FILES.values() for s in pair)
            raise ConfigError(
                f"{r.name('source')}='fashion_mnist' ({r.name('split')}={r.split!r}) needs "
                f"{stem}.gz (or uncompressed {stem}), which {where} lacks: install the Debian "
                f"package (`apt-get install -y {FASHION_MNIST_PACKAGE}`, files in "
                f"{FASHION_MNIST_DIR}) or set {r.name('path')} to a folder with the four files "
                f"{four} (.gz or uncompressed)")
        paths.append(found[0])
    try:
        images = read_idx(paths[0], magic=IMAGES_MAGIC)
        labels = read_idx(paths[1], magic=LABELS_MAGIC)
    except IdxError as err:
        raise ConfigError(f"{r.name('source')}='fashion_mnist', {where}: {err}") from None
    size = (FASHION_MNIST_SIZE, FASHION_MNIST_SIZE)
    if images.shape[1:] != size or labels.shape != images.shape[:1] \
            or (len(labels) and labels.max() >= FASHION_MNIST_CLASSES):
        raise ConfigError(f"{r.name('source')}='fashion_mnist', {where}: {paths[0].name} holds "
                          f"images {images.shape} and {paths[1].name} labels {labels.shape} "
                          f"(up to {labels.max() if len(labels) else None}); expected (N, 28, 28) "
                          f"and (N,) in 0..{FASHION_MNIST_CLASSES - 1}")
    images = images[..., None]
    if pad:  # uint8 0 is -1 in [-1, 1]: black, as Fashion-MNIST's background
        images = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    if r.channels == 3:
        images = np.repeat(images, 3, axis=-1)
    return images, labels.astype(np.int32)


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
    "cifar10": _read_cifar10, "fashion_mnist": _read_fashion_mnist, "random": _read_random,
    "synthetic": _read_synthetic}
