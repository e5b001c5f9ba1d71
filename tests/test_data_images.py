"""dg_jax.data.images: every source on tiny data written here, the errors naming the field, and
the one uint8 <-> float conversion."""
import gzip
import importlib.util
import pathlib
import pickle

import ml_collections
import numpy as np
import pytest

from dg_jax import rng as dg_rng
from dg_jax.data import digits, images, shards
from dg_jax.data.idx import IdxError, read_idx, write_idx
from dg_jax.data.images import SOURCES, load_from_config, load_images
from dg_jax.errors import ConfigError


def _u8(seed, shape):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ---------------------------------------------------------------- conversions


def test_conversions_are_the_one_implementation_and_exact():
    assert digits.float_to_uint8 is shards.to_uint8
    every = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    as_float = shards.to_float(every)
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, every.astype(np.float32) / np.float32(127.5) - 1)
    assert as_float.min() == -1.0 and as_float.max() == 1.0
    np.testing.assert_array_equal(shards.to_uint8(as_float), every)  # exact round trip
    x = np.linspace(-1.2, 1.2, 4001, dtype=np.float32)
    edm = np.clip(x * 127.5 + 128.0, 0, 255).astype(np.uint8)  # EDM's quantisation
    np.testing.assert_array_equal(shards.to_uint8(x), edm)


# ---------------------------------------------------------------- sources


def test_npz_layouts(tmp_path):
    images, labels = _u8(0, (6, 4, 4, 3)), np.arange(6) % 3
    np.savez(tmp_path / "a.npz", images, labels)  # arr_0, arr_1
    np.savez(tmp_path / "b.npz", samples=images, label=np.eye(3)[labels])  # one-hot
    np.savez(tmp_path / "c.npz", images)  # no labels
    for name, want in (("a", labels), ("b", labels), ("c", np.zeros(6))):
        got, got_labels = load_images("npz", path=str(tmp_path / f"{name}.npz"), resolution=4,
                                      channels=3)
        assert got.dtype == np.float32 and got_labels.dtype == np.int32
        np.testing.assert_array_equal(got, shards.to_float(images))
        np.testing.assert_array_equal(got_labels, want)


def test_npz_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.path=.*missing\.npz.*not found"):
        load_images("npz", path=str(tmp_path / "missing.npz"), resolution=4, channels=3)
    np.savez(tmp_path / "other.npz", pixels=_u8(0, (2, 4, 4, 3)))
    with pytest.raises(ConfigError, match=r"data\.path=.*'arr_0' or 'samples'.*pixels"):
        load_images("npz", path=str(tmp_path / "other.npz"), resolution=4, channels=3)
    np.savez(tmp_path / "float.npz", np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ConfigError, match=r"data\.path=.*uint8 NHWC"):
        load_images("npz", path=str(tmp_path / "float.npz"), resolution=4, channels=3)
    with pytest.raises(ConfigError, match=r"data\.source='npz'.*set data\.path"):
        load_images("npz", resolution=4, channels=3)


def test_folder_with_class_subfolders(tmp_path):
    image_mod = pytest.importorskip("PIL.Image")
    written = {}
    for k, cls in enumerate(("zebra", "ant")):  # labels follow the sorted names: ant 0, zebra 1
        (tmp_path / cls).mkdir()
        for i in range(2):
            written[cls, i] = _u8(10 * k + i, (4, 4, 3))
            image_mod.fromarray(written[cls, i]).save(tmp_path / cls / f"{i}.png")
    written["top"] = _u8(99, (4, 4, 3))
    image_mod.fromarray(written["top"]).save(tmp_path / "top.png")
    (tmp_path / "notes.txt").write_text("not an image")
    images, labels = load_images("folder", path=str(tmp_path), resolution=4, channels=3)
    order = [("ant", 0), ("ant", 1), "top", ("zebra", 0), ("zebra", 1)]  # sorted relative paths
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(images, shards.to_float(np.stack([written[k] for k in order])))
    grey, _ = load_images("folder", path=str(tmp_path), resolution=4, channels=1)
    np.testing.assert_array_equal(grey, images[..., :1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"data\.path=.*empty.*holds no"):
        load_images("folder", path=str(tmp_path / "empty"), resolution=4, channels=3)
    with pytest.raises(ConfigError, match=r"data\.source='folder', data\.path=.*not found"):
        load_images("folder", path=str(tmp_path / "absent"), resolution=4, channels=3)


def test_center_crop_arr_closed_forms():
    pytest.importorskip("PIL.Image")
    from dg_jax.eval.reference import center_crop_arr

    x = _u8(5, (32, 32, 3))
    # short side 2 x the size: one BOX halving (the 2x2 mean), then a same-size resize
    blocks = x.reshape(16, 2, 16, 2, 3).astype(np.float64).mean(axis=(1, 3))
    got = center_crop_arr(x, 16)
    assert got.shape == (16, 16, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(np.float64) - blocks).max() <= 1.0
    # 24 x 40 (H x W): no halving, the short side resized to 16 (W 27), the centre 16 columns
    wide = np.zeros((24, 40, 3), np.uint8)
    wide[:, 20:] = 255  # left half black, right half white
    crop = center_crop_arr(wide, 16)
    assert crop.shape == (16, 16, 3)
    assert crop[:, :5].max() < 30 and crop[:, -5:].min() > 225  # the edge stays in the middle
    assert np.array_equal(center_crop_arr(np.full((50, 70, 3), 77, np.uint8), 16),
                          np.full((16, 16, 3), 77, np.uint8))


def test_folder_of_many_sizes_needs_center_crop(tmp_path):
    image_mod = pytest.importorskip("PIL.Image")
    for k, (cls, shape) in enumerate((("a", (40, 24, 3)), ("a", (16, 16, 3)),
                                      ("b", (70, 50, 3)))):
        (tmp_path / cls).mkdir(exist_ok=True)
        image_mod.fromarray(_u8(k, shape)).save(tmp_path / cls / f"{k}.png")
    with pytest.raises(ConfigError, match="center_crop=True"):
        load_images("folder", path=str(tmp_path), resolution=16, channels=3)
    x, labels = load_images("folder", path=str(tmp_path), resolution=16, channels=3,
                            center_crop=True)
    assert x.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(labels, [0, 0, 1])
    np.testing.assert_array_equal(x[1], shards.to_float(_u8(1, (16, 16, 3))))  # already 16x16
    d = ml_collections.ConfigDict(dict(source="folder", path=str(tmp_path), resolution=16,
                                       channels=3, center_crop=True))
    np.testing.assert_array_equal(load_from_config(d)[0], x)
    with pytest.raises(ConfigError, match=r"data\.center_crop=True applies to"):
        load_images("digits", resolution=8, channels=1, center_crop=True)


@pytest.mark.parametrize("resolution", [8, 16])
def test_digits(resolution):
    images, labels = load_images("digits", resolution=resolution, channels=1)
    assert images.shape == (1797, resolution, resolution, 1) and images.dtype == np.float32
    assert -1.0 <= images.min() and images.max() <= 1.0
    assert labels.dtype == np.int32 and set(np.unique(labels)) == set(range(10))
    u8, u8_labels = digits.load_digits_uint8(resolution)
    np.testing.assert_array_equal(images, shards.to_float(u8))
    np.testing.assert_array_equal(labels, u8_labels)
    direct, _ = digits.load_digits_float(resolution)
    np.testing.assert_array_equal(images, direct)


def test_digits_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"data\.resolution=12.*multiple of 8"):
        load_images("digits", resolution=12, channels=1)
    with pytest.raises(ConfigError, match=r"data\.resolution=8 / data\.channels=3"):
        load_images("digits", resolution=8, channels=3)


def test_cifar10_python_batches_and_npz(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rows, labels = [], []
    for i in range(1, 6):
        data, lab = _u8(i, (2, 3072)), [i % 10, (i + 3) % 10]
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": data, b"labels": lab}, f)
        rows.append(data)
        labels += lab
    images, got_labels = load_images("cifar10", path=str(folder), resolution=32, channels=3)
    rows = np.concatenate(rows)
    assert images.shape == (10, 32, 32, 3)
    # the python format stores each image as the R plane, then G, then B, rows of 32
    np.testing.assert_array_equal(images[3, 5, 7], shards.to_float(rows[3, [5 * 32 + 7 + c * 1024
                                                                            for c in range(3)]]))
    np.testing.assert_array_equal(got_labels, labels)
    u8 = shards.to_uint8(images)
    np.savez(tmp_path / "c10.npz", images=u8)
    from_npz, npz_labels = load_images("cifar10", path=str(tmp_path / "c10.npz"), resolution=32,
                                       channels=3)
    np.testing.assert_array_equal(from_npz, images)
    np.testing.assert_array_equal(npz_labels, np.zeros(10))
    (folder / "data_batch_5").unlink()
    with pytest.raises(ConfigError, match=r"data\.path=.*data_batch_5.*cifar-10-batches-py"):
        load_images("cifar10", path=str(folder), resolution=32, channels=3)


def test_random_and_synthetic_draw_from_the_given_generator():
    a = load_images("random", resolution=4, channels=3, num_classes=5,
                    rng=np.random.default_rng(3))
    b = load_images("random", resolution=4, channels=3, num_classes=5,
                    rng=np.random.default_rng(3))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[0].shape == (256, 4, 4, 3) and a[0].dtype == np.float32
    assert set(np.unique(a[1])) <= set(range(5)) and a[1].dtype == np.int32
    images, labels = load_images("synthetic", resolution=8, channels=3,
                                 rng=np.random.default_rng(0))
    assert images.shape == (512, 8, 8, 3) and -1.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(labels, np.zeros(512))
    with pytest.raises(ValueError, match="numpy Generator"):
        load_images("random", resolution=4, channels=3)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed")
def test_tfds_without_tensorflow_names_the_extra():
    with pytest.raises(ConfigError, match=r"data\.source='tfds'.*\[tf\]"):
        load_images("tfds", path="cifar10", resolution=32, channels=3)


# ---------------------------------------------------------------- the entry point's checks


def test_source_and_shape_errors_name_the_fields(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown data\.source 'imagenet'"):
        load_images("imagenet", resolution=8, channels=1)
    with pytest.raises(ConfigError, match=r"unknown data\.source 'folder'.*\['digits', 'npz'\]"):
        load_images("folder", path="x", resolution=8, channels=1, sources=("digits", "npz"))
    np.savez(tmp_path / "a.npz", _u8(0, (2, 4, 4, 3)))
    with pytest.raises(ConfigError, match=r"data\.path=.*a\.npz.*\(4, 4, 3\).*data\.resolution=8 "
                                          r"/ data\.channels=3"):
        load_images("npz", path=str(tmp_path / "a.npz"), resolution=8, channels=3)
    with pytest.raises(ConfigError, match=r"score\.data\.channels=1"):
        load_images("npz", path=str(tmp_path / "a.npz"), resolution=4, channels=1,
                    field="score.data")
    assert set(SOURCES) == {"digits", "npz", "folder", "tfds", "cifar10", "fashion_mnist",
                            "random", "synthetic"}


def test_load_from_config_reads_the_section(tmp_path):
    images = _u8(0, (3, 4, 4, 1))
    np.savez(tmp_path / "a.npz", images, np.array([2, 0, 1]))
    d = ml_collections.ConfigDict(dict(source="npz", path=str(tmp_path / "a.npz"), resolution=4,
                                       channels=1, num_classes=3, holdout=0))
    got, labels = load_from_config(d)
    np.testing.assert_array_equal(got, shards.to_float(images))
    np.testing.assert_array_equal(labels, [2, 0, 1])
    d = ml_collections.ConfigDict(dict(source="digits", resolution=8, channels=1))
    assert load_from_config(d)[0].shape == (1797, 8, 8, 1)


# ---------------------------------------------------------------- IDX files and Fashion-MNIST


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
    arrays = {"images": _u8(0, (5, 3, 4)), "labels": np.arange(5, dtype=np.uint8),
              "int32": np.array([[-7, 1 << 20], [3, 0]], np.int32),
              "float32": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
              "float64": np.array([np.pi, -0.5])}
    for name, array in arrays.items():
        path = write_idx(tmp_path / (name + "-idx" + suffix), array)
        assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
        got = read_idx(path)
        assert got.dtype == array.dtype and got.dtype.isnative and got.flags.writeable
        np.testing.assert_array_equal(got, array)
    # MNIST's magic numbers: 2051 uint8 (N, rows, cols), 2049 uint8 (N,)
    assert int.from_bytes(gzip.decompress((tmp_path / "images-idx.gz").read_bytes())[:4]
                          if suffix else (tmp_path / "images-idx").read_bytes()[:4], "big") == 2051
    read_idx(tmp_path / f"images-idx{suffix}", magic=2051)
    read_idx(tmp_path / f"labels-idx{suffix}", magic=2049)


def test_idx_errors_name_the_file(tmp_path):
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(10, dtype=np.uint8))
    data = path.read_bytes()
    with pytest.raises(IdxError, match=r"labels-idx1-ubyte has IDX magic number 2049, "
                                       r"expected 2051 \(uint8 images\)"):
        read_idx(path, magic=2051)
    (tmp_path / "text").write_bytes(b"hello, not an IDX file")
    with pytest.raises(IdxError, match=r"text is not an IDX file"):
        read_idx(tmp_path / "text")
    (tmp_path / "cut").write_bytes(data[:-3])
    with pytest.raises(IdxError, match=r"cut is truncated: .*shape \(10,\) \(18 bytes in all\) "
                                       r"but it holds 15 bytes"):
        read_idx(tmp_path / "cut")
    (tmp_path / "cut-header").write_bytes(data[:6])
    with pytest.raises(IdxError, match=r"cut-header is truncated: .*1 dimensions"):
        read_idx(tmp_path / "cut-header")
    (tmp_path / "cut-payload.gz").write_bytes(gzip.compress(data[:-1]))
    with pytest.raises(IdxError, match=r"cut-payload\.gz is truncated"):
        read_idx(tmp_path / "cut-payload.gz")
    packed = gzip.compress(data)
    (tmp_path / "cut-stream.gz").write_bytes(packed[:len(packed) // 2])
    with pytest.raises(IdxError, match=r"cut-stream\.gz is a truncated gzip file"):
        read_idx(tmp_path / "cut-stream.gz")
    (tmp_path / "long").write_bytes(data + b"\0")
    with pytest.raises(IdxError, match=r"long is not a valid IDX file: 1 bytes follow"):
        read_idx(tmp_path / "long")
    with pytest.raises(IdxError, match=r"absent not found"):
        read_idx(tmp_path / "absent")
    with pytest.raises(ValueError, match="IDX holds"):
        write_idx(tmp_path / "x", np.zeros(3, np.uint64))


FAKE_SIZES = {"train": 40, "test": 20}  # 4 and 2 images of each of the 10 classes


def _fake_fashion(folder, gz=True):
    """Fashion-MNIST's four IDX files with FAKE_SIZES random images, labels cycling 0..9 (the
    images' shapes and dtypes of the real files); -> {split: (uint8 images, labels)}."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for k, (split, prefix) in enumerate((("train", "train"), ("test", "t10k"))):
        n = FAKE_SIZES[split]
        x, y = _u8(100 + k, (n, 28, 28)), (np.arange(n) * 3 % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{'.gz' * gz}", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{'.gz' * gz}", y)
        written[split] = x, y
    return written


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_on_a_fake_folder(tmp_path, gz):
    written = _fake_fashion(tmp_path, gz=gz)
    for split, (x, y) in written.items():
        got, labels = load_images("fashion_mnist", path=str(tmp_path), split=split,
                                  resolution=28, channels=1)
        assert got.shape == (FAKE_SIZES[split], 28, 28, 1) and got.dtype == np.float32
        np.testing.assert_array_equal(got[..., 0], shards.to_float(x))
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(labels, y)
    small, _ = load_images("fashion_mnist", path=str(tmp_path), resolution=28, channels=1)
    padded, _ = load_images("fashion_mnist", path=str(tmp_path), resolution=32, channels=1)
    assert padded.shape == (40, 32, 32, 1)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], small)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(padded[:, border] == -1.0)  # black, as the images' uint8 0 background
    rgb, _ = load_images("fashion_mnist", path=str(tmp_path), resolution=32, channels=3)
    assert rgb.shape == (40, 32, 32, 3)
    np.testing.assert_array_equal(rgb, np.repeat(padded, 3, axis=-1))
    d = ml_collections.ConfigDict(dict(source="fashion_mnist", path=str(tmp_path), split="test",
                                       resolution=28, channels=1, num_classes=10))
    np.testing.assert_array_equal(load_from_config(d)[1], written["test"][1])


def test_fashion_mnist_folder_prefers_debian_then_an_export(tmp_path, monkeypatch):
    from dg_jax.data.images import fashion_mnist_folder

    exported = tmp_path / "export"
    _fake_fashion(exported)
    monkeypatch.setattr(images, "FASHION_MNIST_DIR", str(tmp_path / "no_debian"))
    assert fashion_mnist_folder(exported) == str(exported)  # complete: nothing re-exported
    debian = tmp_path / "debian"
    _fake_fashion(debian)
    monkeypatch.setattr(images, "FASHION_MNIST_DIR", str(debian))
    assert fashion_mnist_folder(tmp_path / "unused") == str(debian)
    assert not (tmp_path / "unused").exists()


def test_fashion_mnist_balanced_subsets(tmp_path):
    _fake_fashion(tmp_path)
    full, full_labels = load_images("fashion_mnist", path=str(tmp_path), resolution=28,
                                    channels=1)

    def subset(seed, size=20):
        return load_images("fashion_mnist", path=str(tmp_path), resolution=28, channels=1,
                           subset_size=size, rng=dg_rng.numpy(seed, "data", "subset"))

    a, a_labels = subset(0)
    b, b_labels = subset(0)
    np.testing.assert_array_equal(a, b)  # the same seed, the same subset
    np.testing.assert_array_equal(a_labels, b_labels)
    np.testing.assert_array_equal(np.bincount(a_labels, minlength=10), np.full(10, 2))
    # the rows of the full set, in its order
    rows = [int(np.flatnonzero((full == img).all(axis=(1, 2, 3)))[0]) for img in a]
    assert rows == sorted(rows) and len(set(rows)) == 20
    np.testing.assert_array_equal(full_labels[rows], a_labels)
    assert not np.array_equal(subset(1)[0], a)
    np.testing.assert_array_equal(subset(0, size=40)[0], full)  # every image, in order
    d = ml_collections.ConfigDict(dict(source="fashion_mnist", path=str(tmp_path), resolution=28,
                                       channels=1, subset_size=20))
    np.testing.assert_array_equal(load_from_config(d, rng=dg_rng.numpy(0, "data", "subset"))[0], a)
    # any labelled source
    npz_labels = np.array([0, 0, 1, 1, 1, 2])
    np.savez(tmp_path / "a.npz", _u8(0, (6, 4, 4, 1)), npz_labels)
    _, got = load_images("npz", path=str(tmp_path / "a.npz"), resolution=4, channels=1,
                         subset_size=3, rng=np.random.default_rng(0))
    assert got[0] == 0 and got[1] == 1 and got[2] == 2  # one a class, sorted
    with pytest.raises(ConfigError, match=r"data\.subset_size=6 asks for 2 images of each of the "
                                          r"3 classes, but class 2 has only 1"):
        load_images("npz", path=str(tmp_path / "a.npz"), resolution=4, channels=1,
                    subset_size=6, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"data\.subset_size=25 must be a multiple of the "
                                          r"number of classes, 10"):
        subset(0, size=25)
    with pytest.raises(ConfigError, match=r"data\.subset_size=50 asks for 5 images"):
        subset(0, size=50)
    with pytest.raises(ConfigError, match=r"data\.subset_size=-10 must be an integer >= 0"):
        subset(0, size=-10)
    with pytest.raises(ValueError, match=r"data\.subset_size=20 draws its subset from rng"):
        load_images("fashion_mnist", path=str(tmp_path), resolution=28, channels=1,
                    subset_size=20)


def test_fashion_mnist_errors_name_the_field_and_the_file(tmp_path, monkeypatch):
    _fake_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    load_images("fashion_mnist", path=str(tmp_path), resolution=28, channels=1)  # train intact
    with pytest.raises(ConfigError, match=r"data\.split='test'\) needs t10k-labels-idx1-ubyte\.gz "
                                          r"\(or uncompressed t10k-labels-idx1-ubyte\), which "
                                          r"data\.path=.* lacks: install the Debian package "
                                          r"\(`apt-get install -y dataset-fashion-mnist`.*\) or "
                                          r"set data\.path to a folder with the four files"):
        load_images("fashion_mnist", path=str(tmp_path), split="test", resolution=28, channels=1)
    monkeypatch.setattr(images, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match=r"needs train-images-idx3-ubyte\.gz .*which the "
                                          r"default folder .*absent lacks: install the Debian "
                                          r"package \(`apt-get install -y dataset-fashion-mnist`"):
        load_images("fashion_mnist", resolution=28, channels=1)
    with pytest.raises(ConfigError, match=r"data\.split='validation'.*\['train', 'test'\]"):
        load_images("fashion_mnist", path=str(tmp_path), split="validation", resolution=28,
                    channels=1)
    with pytest.raises(ConfigError, match=r"data\.resolution=64: .*28x28; set 28, or 32"):
        load_images("fashion_mnist", path=str(tmp_path), resolution=64, channels=1)
    with pytest.raises(ConfigError, match=r"data\.channels=2: .*grayscale"):
        load_images("fashion_mnist", path=str(tmp_path), resolution=28, channels=2)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(40, dtype=np.int32))
    with pytest.raises(ConfigError, match=r"data\.source='fashion_mnist', data\.path=.*: .*"
                                          r"train-labels-idx1-ubyte\.gz has IDX magic number 3073, "
                                          r"expected 2049"):
        load_images("fashion_mnist", path=str(tmp_path), resolution=28, channels=1)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(30, dtype=np.uint8))
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte\.gz holds images "
                                          r"\(40, 28, 28\) and train-labels-idx1-ubyte\.gz labels "
                                          r"\(30,\)"):
        load_images("fashion_mnist", path=str(tmp_path), resolution=28, channels=1)


@pytest.mark.skipif(not pathlib.Path(images.FASHION_MNIST_DIR).is_dir(),
                    reason=f"{images.FASHION_MNIST_DIR} is absent: apt-get install -y "
                           "dataset-fashion-mnist (Debian's Fashion-MNIST) to run this test")
def test_fashion_mnist_real_files():
    train, train_labels = load_images("fashion_mnist", resolution=28, channels=1)  # the default
    assert train.shape == (60000, 28, 28, 1) and train.dtype == np.float32
    assert train.min() == -1.0 and train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(train_labels, minlength=10), np.full(10, 6000))
    del train
    test, test_labels = load_images("fashion_mnist", split="test", resolution=28, channels=1)
    assert test.shape == (10000, 28, 28, 1)
    assert test_labels.min() == 0 and test_labels.max() == 9
    np.testing.assert_array_equal(np.bincount(test_labels, minlength=10), np.full(10, 1000))
