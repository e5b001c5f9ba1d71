"""Sample shards, reference statistics from datasets, the `launch.evaluate` CLI (with a tiny
stand-in for the Inception) and the Inception throughput smoke run."""
import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dg_jax.data import shards
from dg_jax.eval import fid as fid_lib
from dg_jax.eval import reference as ref
from dg_jax.eval.evaluate import FeatureBackend, compute_metrics, parse_metrics
from dg_jax.eval.features import data_mesh, extract_features
from dg_jax.eval.stats_io import feature_statistics, load_stats
from launch import evaluate as evaluate_cli

WIDTH = 16


def _images(seed, n, hw=8, c=3):
    return np.random.default_rng(seed).integers(0, 256, (n, hw, hw, c), dtype=np.uint8)


def _stand_in_backend() -> FeatureBackend:
    """A random projection of the pixels, extracted with the real sharded machinery (8 devices)."""
    w = np.random.default_rng(123).normal(size=(8 * 8 * 3, WIDTH)) / np.sqrt(8 * 8 * 3)
    params = {"w": jnp.asarray(w, jnp.float32)}

    def fn(p, images):
        x = images.reshape(images.shape[0], -1).astype(jnp.float32) / 127.5 - 1.0
        feats = jnp.tanh(x @ p["w"])
        return feats, feats[:, :10] * 3.0

    def extract(batches, name="stand_in", total=None):
        feats, logits = extract_features(fn, params, (ref.to_rgb(b) for b in batches),
                                         mesh=data_mesh(), name=name, total=total)
        return feats.astype(np.float64), logits.astype(np.float64)

    return FeatureBackend("stand_in", WIDTH, extract)


def _write_set(directory, images, labels=None, shard_size=16):
    for i, start in enumerate(range(0, len(images), shard_size)):
        shards.write_shard(directory, i, images[start:start + shard_size],
                           None if labels is None else labels[start:start + shard_size])
    shards.write_manifest(directory, num_samples=len(images), shard_size=shard_size)


# ---------------------------------------------------------------- shards


def test_shard_round_trip(tmp_path):
    images, labels = _images(0, 10), np.arange(10, dtype=np.int32) % 3
    _write_set(tmp_path / "s", images, labels, shard_size=4)
    manifest = shards.read_manifest(tmp_path / "s")
    digests = manifest.pop("sha256")
    assert manifest == {"num_samples": 10, "num_shards": 3, "shard_size": 4,
                        "image_shape": [8, 8, 3], "complete": True}
    assert digests == {shards.shard_path(tmp_path / "s", i).name:
                       shards.file_sha256(shards.shard_path(tmp_path / "s", i)) for i in range(3)}
    got_images, got_labels = shards.read_shards(tmp_path / "s")
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int32
    assert [len(im) for im, _ in shards.iter_shards(tmp_path / "s")] == [4, 4, 2]
    _write_set(tmp_path / "u", images, None, shard_size=4)
    assert shards.read_shards(tmp_path / "u")[1] is None


def test_shard_writes_are_atomic(tmp_path, monkeypatch):
    images = _images(1, 6)
    _write_set(tmp_path, images, shard_size=3)
    # A leftover temporary file from a killed writer is ignored by readers.
    (tmp_path / (shards.shard_path(tmp_path, 1).name + ".tmp")).write_bytes(b"partial")
    np.testing.assert_array_equal(shards.read_shards(tmp_path)[0], images)
    # A write that dies mid-way leaves no shard under the final name.

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        shards.write_shard(tmp_path / "new", 0, images)
    assert not shards.shard_exists(tmp_path / "new", 0)


def test_missing_shard_and_manifest_errors(tmp_path):
    with pytest.raises(shards.ShardError, match="manifest.json"):
        shards.read_manifest(tmp_path)
    _write_set(tmp_path, _images(2, 9), shard_size=3)
    shards.shard_path(tmp_path, 1).unlink()
    with pytest.raises(shards.ShardError, match="samples_000001.npz"):
        shards.read_shards(tmp_path)
    with pytest.raises(shards.ShardError, match=r"missing shards \['samples_000001.npz'\]"):
        shards.write_manifest(tmp_path, num_samples=9, shard_size=3)
    with pytest.raises(shards.ShardError, match="uint8 NHWC"):
        shards.write_shard(tmp_path, 5, np.zeros((2, 4, 4, 3), np.float32))


# ---------------------------------------------------------------- reference statistics


def test_rebatch():
    parts = [np.arange(5), np.arange(5, 7), np.arange(7, 20)]
    got = list(ref.rebatch(parts, 4))
    assert [len(b) for b in got] == [4, 4, 4, 4, 4]
    np.testing.assert_array_equal(np.concatenate(got), np.arange(20))
    got = list(ref.rebatch(parts, 4, limit=10))
    np.testing.assert_array_equal(np.concatenate(got), np.arange(10))


def test_reference_stats_from_npz_layouts(tmp_path):
    images, labels = _images(3, 30), np.arange(30) % 10
    np.savez(tmp_path / "a.npz", images, labels)  # arr_0, arr_1 (ADM / DG sample files)
    np.savez(tmp_path / "b.npz", samples=images, label=np.eye(10)[labels])  # one-hot labels
    backend = _stand_in_backend()
    expected = feature_statistics(backend.extract([images])[0])
    for name in ("a.npz", "b.npz"):
        loaded = ref.load_npz_images(tmp_path / name)
        np.testing.assert_array_equal(loaded, images)
        out = tmp_path / f"stats_{name}"
        mu, sigma = ref.write_reference_statistics(out, ref.rebatch([loaded], 7), backend.extract)
        mu2, sigma2 = load_stats(out, dim=WIDTH)
        # float32 features of differently padded batches: equal to float32 rounding.
        np.testing.assert_allclose(mu2, expected[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sigma2, expected[1], rtol=1e-5, atol=1e-6)
    np.savez(tmp_path / "c.npz", images=images)
    with pytest.raises(ValueError, match="arr_0"):
        ref.load_npz_images(tmp_path / "c.npz")
    with pytest.raises(ref.ReferenceDataError, match="missing.npz"):
        ref.load_npz_images(tmp_path / "missing.npz")


def test_reference_images_from_png_folder(tmp_path):
    image_mod = pytest.importorskip("PIL.Image")
    images = _images(4, 5)
    (tmp_path / "sub").mkdir()
    for i, im in enumerate(images[:4]):
        image_mod.fromarray(im).save(tmp_path / f"{i:03d}.png")
    gray = images[4, :, :, 0]
    image_mod.fromarray(gray, mode="L").save(tmp_path / "sub" / "004.png")
    (tmp_path / "notes.txt").write_text("ignored")
    got = ref.load_image_folder(tmp_path)
    np.testing.assert_array_equal(got[:4], images[:4])
    np.testing.assert_array_equal(got[4], np.repeat(gray[:, :, None], 3, axis=-1))
    assert [len(b) for b in ref.iter_image_folder(tmp_path, batch_size=2)] == [2, 2, 1]
    image_mod.fromarray(_images(5, 1, hw=6)[0]).save(tmp_path / "zz.png")
    with pytest.raises(ref.ReferenceDataError, match=r"zz\.png"):
        ref.load_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ref.ReferenceDataError, match="holds no"):
        ref.load_image_folder(tmp_path / "empty")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None,
                    reason="TensorFlow is installed")
def test_tfds_without_tensorflow_names_the_extra():
    with pytest.raises(ref.ReferenceDataError, match=r"\.\[tf\]"):
        next(ref.iter_tfds_images("cifar10"))


# ---------------------------------------------------------------- metrics and the CLI


def test_compute_metrics_rules():
    assert parse_metrics("FID, kid") == ("fid", "kid")
    with pytest.raises(ValueError, match="unknown"):
        parse_metrics("fid,lpips")
    f = np.random.default_rng(6).normal(size=(20, 4))
    with pytest.raises(ValueError, match="reference images"):
        compute_metrics(f, f, ("pr",), ref_stats=feature_statistics(f))
    with pytest.raises(ValueError, match="width"):
        compute_metrics(f, f, ("fid",), ref_stats=feature_statistics(f[:, :3]))


def test_evaluate_cli_end_to_end(tmp_path, capsys):
    backend = _stand_in_backend()
    gen, real = _images(7, 40), _images(8, 48)
    _write_set(tmp_path / "samples", gen, np.zeros(40, np.int32), shard_size=16)
    np.savez(tmp_path / "ref.npz", real)
    out = tmp_path / "results.json"
    rc = evaluate_cli.main([f"--samples={tmp_path / 'samples'}",
                            f"--ref_npz={tmp_path / 'ref.npz'}", "--batch_size=12",
                            f"--output={out}"], backend=backend)
    assert rc == 0
    results = json.loads(out.read_text())
    gen_f, gen_logits = backend.extract([gen])
    real_f, _ = backend.extract([real])
    assert results["num_samples"] == 40 and results["features"] == "stand_in"
    np.testing.assert_allclose(results["fid"], fid_lib.fid_from_features(gen_f, real_f),
                               rtol=1e-6)
    np.testing.assert_allclose(results["is_mean"], fid_lib.inception_score(gen_logits)[0],
                               rtol=1e-6)
    np.testing.assert_allclose(results["kid"],
                               fid_lib.kernel_inception_distance(gen_f, real_f), rtol=1e-6)
    assert 0.0 <= results["precision"] <= 1.0 and 0.0 <= results["recall"] <= 1.0
    assert "fid:" in capsys.readouterr().out

    # --write_stats, then FID against the written statistics gives the same number.
    stats = tmp_path / "stats.npz"
    assert evaluate_cli.main(["--write_stats", f"--ref_npz={tmp_path / 'ref.npz'}",
                              f"--output={stats}"], backend=backend) == 0
    out2 = tmp_path / "results_stats.json"
    assert evaluate_cli.main([f"--samples={tmp_path / 'samples'}", f"--ref_stats={stats}",
                              "--num_samples=30", f"--output={out2}"], backend=backend) == 0
    results2 = json.loads(out2.read_text())
    assert results2["metrics"] == ["fid", "is"] and results2["num_samples"] == 30
    np.testing.assert_allclose(results2["fid"], fid_lib.fid_from_features(gen_f[:30], real_f),
                               rtol=1e-6)
    with pytest.raises(SystemExit):  # pr needs reference features
        evaluate_cli.main([f"--samples={tmp_path / 'samples'}", f"--ref_stats={stats}",
                           "--metrics=fid,pr", f"--output={out2}"], backend=backend)


def test_evaluate_cli_errors(tmp_path, capsys):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mu=np.zeros(WIDTH), sigma=np.eye(WIDTH))
    _write_set(tmp_path / "samples", _images(9, 12), shard_size=8)
    # Real Inception path: the 2048-wide check fails before the (absent) weights are read.
    rc = evaluate_cli.main([f"--samples={tmp_path / 'samples'}", f"--ref_stats={wrong}",
                            "--inception_weights=/nonexistent.pth", "--output=unused.json"])
    assert rc == 2
    assert "wrong.npz: key 'mu' has feature width 16, expected 2048" in capsys.readouterr().err
    shards.shard_path(tmp_path / "samples", 1).unlink()
    rc = evaluate_cli.main([f"--samples={tmp_path / 'samples'}", f"--ref_stats={wrong}",
                            f"--output={tmp_path / 'r.json'}"], backend=_stand_in_backend())
    assert rc == 2 and "samples_000001.npz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_cli.main([f"--samples={tmp_path / 'samples'}", f"--ref_npz={wrong}",
                           "--output=unused.json"])  # inception without --inception_weights


# ---------------------------------------------------------------- throughput smoke run


@pytest.mark.slow
def test_inception_throughput_smoke():
    from dg_jax.eval.benchmark_inception import inception_throughput

    mesh = data_mesh(devices=jax.local_devices()[:2])
    out = inception_throughput(batch_size=2, num_batches=1, image_size=16, mesh=mesh)
    assert out["images_per_second"] > 0 and out["compile_seconds"] > 0
    assert out["num_devices"] == 2 and out["device"].startswith("cpu")
    with pytest.raises(ValueError, match="multiple"):
        inception_throughput(batch_size=3, num_batches=1, image_size=16, mesh=mesh)
