"""dg_jax.data.images: every source on tiny data written here, the errors naming the field, and
the one uint8 <-> float conversion."""
import importlib.util
import pickle

import ml_collections
import numpy as np
import pytest

from dg_jax.data import digits, shards
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
    assert set(SOURCES) == {"digits", "npz", "folder", "tfds", "cifar10", "random", "synthetic"}


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
