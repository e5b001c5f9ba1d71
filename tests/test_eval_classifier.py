"""The evaluation classifier (dg_jax.eval.classifier): training learns and is deterministic, the
batched features, the Fashion-MNIST network's cache (on tiny fake IDX folders), the
real-vs-real FD floor, and the digits wrappers against the original digits-only code."""
import functools
import json
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dg_jax import rng
from dg_jax.data.digits import load_digits_float, load_digits_uint8
from dg_jax.data.idx import write_idx
from dg_jax.data.images import FASHION_MNIST_DIR, FASHION_MNIST_FILES
from dg_jax.eval import classifier as clf
from dg_jax.eval.digits_classifier import digits_features, train_digits_classifier
from dg_jax.eval.evaluate import fashion_backend
from dg_jax.eval.fid import fid_from_features, real_floor

# the digits layout (shares the compiled initialisers with the digits test), 8 features
TINY = dict(feature_dim=8)


def _bright_dark(n=96, seed=0):
    """Two separable classes of 8x8 one-channel images: dark (label 0) and bright (label 1)."""
    g = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int32) % 2
    images = np.where(labels[:, None, None, None] == 1, 0.6, -0.6) \
        + 0.3 * g.normal(size=(n, 8, 8, 1))
    return images.astype(np.float32), labels


@pytest.fixture(scope="module")
def tiny_net():
    images, labels = _bright_dark()
    return images, labels, clf.train_classifier(images, labels, num_classes=2, steps=30,
                                                batch_size=32, seed=3, **TINY)


def _leaves(params):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]


def test_train_classifier_learns_and_is_deterministic(tiny_net):
    images, labels, (apply_fn, params, acc) = tiny_net
    assert acc == 1.0
    _, params2, acc2 = clf.train_classifier(images, labels, num_classes=2, steps=30,
                                            batch_size=32, seed=3, **TINY)
    assert acc2 == acc
    for a, b in zip(_leaves(params), _leaves(params2)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    _, params3, _ = clf.train_classifier(images, labels, num_classes=2, steps=30,
                                         batch_size=32, seed=4, **TINY)
    assert any(a.tobytes() != b.tobytes() for a, b in zip(_leaves(params), _leaves(params3)))


def test_train_classifier_rejects_bad_labels():
    images, labels = _bright_dark(8)
    with pytest.raises(ValueError, match="num_classes=1"):
        clf.train_classifier(images, labels, num_classes=1, steps=1)


def test_features_shapes_and_inputs(tiny_net):
    images, _, (apply_fn, params, _) = tiny_net
    logits, feats = clf.features(apply_fn, params, images, batch_size=40)  # 40, 40, 16
    assert logits.shape == (96, 2) and feats.shape == (96, 8)
    assert logits.dtype == feats.dtype == np.float32 and (feats >= 0).all()
    whole = clf.features(apply_fn, params, images, batch_size=512)
    np.testing.assert_allclose(whole[0], logits, rtol=1e-5, atol=1e-5)
    u8 = np.clip(np.round((images + 1) * 127.5), 0, 255).astype(np.uint8)
    from_u8 = clf.features(apply_fn, params, u8)
    from_float = clf.features(apply_fn, params, u8.astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_array_equal(from_u8[1], from_float[1])


def test_real_floor_small_and_positive():
    g = np.random.default_rng(0)
    feats = g.normal(size=(4000, 8)) @ g.normal(size=(8, 8))
    floor = real_floor(feats, rng.numpy(0, "eval", "floor"))
    assert 0 < floor < 0.01 * np.trace(np.cov(feats.T))  # ~ the sampling noise of 2,000 rows
    assert floor == real_floor(feats, rng.numpy(0, "eval", "floor"))  # seeded
    assert real_floor(feats, rng.numpy(1, "eval", "floor")) != floor
    shifted = fid_from_features(feats[:2000], feats[2000:] + 1.0)
    assert shifted > 10 * floor
    with pytest.raises(ValueError, match="at least 4 rows"):
        real_floor(feats[:3], rng.numpy(0, "eval", "floor"))


# ------------------------------------------------------------- Fashion-MNIST cache


def _fake_fashion(folder: pathlib.Path, n_train=64, n_test=32):
    """A tiny stand-in of the four IDX files: class k is a bright square at a k-dependent place."""
    folder.mkdir()
    g = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = g.integers(0, 40, (n, 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):
            r, c = 2 + 6 * (k // 4), 2 + 6 * (k % 4)
            images[i, r:r + 6, c:c + 6] = 230
        img_name, lab_name = FASHION_MNIST_FILES[split]
        write_idx(folder / (img_name + ".gz"), images)
        write_idx(folder / lab_name, labels)
    return folder


FAKE = dict(steps=3, batch_size=16, feature_dim=4, widths=(4,), pool_after=(0,))


def test_fashion_classifier_cache(tmp_path, capsys):
    data = str(_fake_fashion(tmp_path / "fm"))
    cache = tmp_path / "cache"
    first = clf.fashion_classifier(cache, path=data, **FAKE)
    assert first.trained and 0 <= first.test_accuracy <= 1 and first.feature_dim == 4
    saved = json.loads((cache / clf.CACHE_JSON).read_text())
    assert saved["step"] == 0 and saved["settings"] == first.settings
    assert saved["settings"]["steps"] == 3 and saved["test_accuracy"] == first.test_accuracy

    capsys.readouterr()
    second = clf.fashion_classifier(cache, path=data, **FAKE)  # the same settings: loaded
    assert not second.trained
    assert "loaded from" in capsys.readouterr().out
    assert (second.test_accuracy, second.train_accuracy) == (first.test_accuracy,
                                                              first.train_accuracy)
    for a, b in zip(_leaves(first.params), _leaves(second.params)):
        assert a.tobytes() == b.tobytes()
    x = np.zeros((2, 28, 28, 1), np.uint8)
    np.testing.assert_array_equal(clf.features(first.apply_fn, first.params, x)[1],
                                  clf.features(second.apply_fn, second.params, x)[1])

    third = clf.fashion_classifier(cache, path=data, **{**FAKE, "steps": 4})  # other settings
    assert third.trained
    assert "other settings (steps)" in capsys.readouterr().out
    saved = json.loads((cache / clf.CACHE_JSON).read_text())
    assert saved["step"] == 1 and saved["settings"]["steps"] == 4
    assert not clf.fashion_classifier(cache, path=data, **{**FAKE, "steps": 4}).trained

    backend = fashion_backend(cache, path=data, **{**FAKE, "steps": 4})  # loads the same net
    feats, logits = backend.extract([np.zeros((3, 28, 28, 3), np.uint8),
                                     np.zeros((2, 28, 28, 3), np.uint8)])
    assert backend.name == "fashion_mnist" and backend.width == 4
    assert feats.shape == (5, 4) and logits.shape == (5, 10)
    with pytest.raises(ValueError, match="trained at 28x28"):
        backend.extract([np.zeros((1, 32, 32, 1), np.uint8)])


@pytest.mark.slow
def test_fashion_classifier_real_files(tmp_path):
    """The real 60,000 / 10,000 files (Debian's dataset-fashion-mnist), 150 steps."""
    if not pathlib.Path(FASHION_MNIST_DIR).is_dir():
        pytest.skip(f"Fashion-MNIST not installed in {FASHION_MNIST_DIR}")
    net = clf.fashion_classifier(tmp_path, resolution=32, steps=150)
    assert net.trained and net.test_accuracy > 0.5  # chance: 0.1
    backend = fashion_backend(tmp_path, resolution=32, steps=150)
    assert backend.width == clf.FASHION_ARCH["feature_dim"]


# ------------------------------------------------------------- the digits wrappers


class _OriginalDigitsCNN(nn.Module):
    """The digits network as it was before dg_jax.eval.classifier (the reference)."""
    feature_dim: int = 64

    @nn.compact
    def __call__(self, x, return_features: bool = False):
        h = nn.relu(nn.Conv(32, (3, 3))(x))
        h = nn.avg_pool(nn.relu(nn.Conv(64, (3, 3))(h)), (2, 2), (2, 2))
        h = nn.relu(nn.Conv(64, (3, 3))(h))
        h = jnp.mean(h, axis=(1, 2))
        feats = nn.relu(nn.Dense(self.feature_dim)(h))
        logits = nn.Dense(10)(feats)
        return (logits, feats) if return_features else logits


def _original_train_digits(resolution, seed, steps, batch_size=128):
    """The original digits-only training code, verbatim but for the progress lines."""
    images, labels = load_digits_float(resolution)
    model = _OriginalDigitsCNN()
    params = model.init(rng.key(seed, "eval", "digits_classifier", "init"),
                        jnp.zeros((1,) + images.shape[1:]))
    tx = optax.adam(2e-3)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, x, y, k):
        shift = jax.random.randint(k, (2,), -1, 2)
        x = jnp.roll(x, shift, axis=(1, 2))

        def loss_fn(p):
            logits = model.apply(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    key = rng.key(seed, "eval", "digits_classifier", "train")
    batches = rng.numpy(seed, "eval", "digits_classifier", "batches")
    for i in range(steps):
        idx = batches.integers(0, len(images), batch_size)
        params, opt_state = step(params, opt_state, images[idx], labels[idx],
                                 jax.random.fold_in(key, i))
    apply_fn = jax.jit(functools.partial(model.apply, return_features=True))
    logits, _ = apply_fn(params, images)
    accuracy = float(np.mean(np.argmax(np.asarray(logits), -1) == labels))
    return apply_fn, params, accuracy


def test_digits_wrappers_match_the_original_code():
    ref_apply, ref_params, ref_acc = _original_train_digits(8, seed=1, steps=5)
    apply_fn, params, acc = train_digits_classifier(8, seed=1, steps=5)
    assert acc == ref_acc
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(ref_params)
    for a, b in zip(_leaves(params), _leaves(ref_params)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    u8 = load_digits_uint8(8)[0][:100]  # the original digits_features: x / 127.5 - 1, batched
    ref = [ref_apply(ref_params, jnp.asarray(u8[i:i + 64].astype(np.float32) / 127.5 - 1.0))
           for i in range(0, len(u8), 64)]
    logits, feats = digits_features(apply_fn, params, u8, batch_size=64)
    np.testing.assert_array_equal(logits, np.concatenate([np.asarray(r[0]) for r in ref]))
    np.testing.assert_array_equal(feats, np.concatenate([np.asarray(r[1]) for r in ref]))


def test_feature_layer_reads_positions_or_their_mean_and_schedules_are_checked():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 1)), jnp.float32)
    for flatten, kernel_rows in ((True, 4 * 4 * 3), (False, 3)):
        net = clf.ClassifierCNN(feature_dim=5, widths=(3,), pool_after=(0,), flatten=flatten)
        params = net.init(jax.random.PRNGKey(0), x)
        dense = [v for k, v in params["params"].items() if k.startswith("Dense")][0]
        assert dense["kernel"].shape == (kernel_rows, 5)
        logits, feats = net.apply(params, x, return_features=True)
        assert logits.shape == (2, 10) and feats.shape == (2, 5)
    with pytest.raises(ValueError, match="lr_schedule='linear'"):
        clf.train_classifier(np.zeros((4, 8, 8, 1)), np.zeros(4, int), steps=1,
                             lr_schedule="linear")
