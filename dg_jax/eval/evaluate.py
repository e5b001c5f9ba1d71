"""Evaluation of a sample set against a reference: feature backends and the metric suite.

A `FeatureBackend` turns a stream of uint8 NHWC batches into `(features, score_logits)`:
- `inception_backend(weights)`: pool3 (2048) of pytorch-fid's FID Inception, sharded over the
  device mesh, and `pool3 @ W_fc` (no bias) as the Inception Score logits (the original
  improved-GAN code's softmax input; see `dg_jax.eval.fid.inception_score_logits`);
- `digits_backend(resolution)`: the small scikit-learn-digits CNN (64-d features, 10 logits),
  for the embedded digit experiments.
- `fashion_backend(cache_dir, resolution)`: the Fashion-MNIST CNN of `dg_jax.eval.classifier`
  (128-d features, 10 logits), trained once on the 60,000 training images and cached in
  `cache_dir` (its test accuracy is logged); the real-vs-real floor of its FD is
  `dg_jax.eval.fid.real_floor` on the test set's features.

`compute_metrics` then gives FID (against reference statistics or features), Inception Score
(10 splits), precision / recall (k = 3 nearest-neighbour manifolds) and KID (StyleGAN2-ADA's
estimator, 100 subsets of at most 1000).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Sequence

import numpy as np

from dg_jax.convert.saved import load_weights
from dg_jax.data import shards
from dg_jax.errors import NonFiniteError
from dg_jax.eval import classifier as classifier_lib
from dg_jax.eval import fid as fid_lib
from dg_jax.eval.digits_classifier import digits_features, train_digits_classifier
from dg_jax.eval.features import extract_inception_features
from dg_jax.eval.precision_recall import precision_recall
from dg_jax.eval.reference import rebatch, to_rgb
from dg_jax.eval.stats_io import feature_statistics
from dg_jax.models.inception import POOL3_DIM

ALL_METRICS = ("fid", "is", "pr", "kid")
METRICS_NEEDING_REF_FEATURES = ("pr", "kid")


@dataclasses.dataclass(frozen=True)
class FeatureBackend:
    """`extract(batches, name=..., total=...) -> (features (N, width), score_logits (N, C))`
    for uint8 NHWC batches; `name` and `total` (images, if known) label its progress lines."""
    name: str
    width: int
    extract: Callable[[Iterable[np.ndarray]], tuple[np.ndarray, np.ndarray]]
    info: dict = dataclasses.field(default_factory=dict)  # e.g. a trained network's accuracy


def inception_backend(weights_path, mesh=None, batch_size: int | None = None,
                      field: str = "inception_weights") -> FeatureBackend:
    """FID Inception features from pytorch-fid's `.pth` at `weights_path` (read, never fetched),
    or from its `launch.convert --kind=fid_inception` folder; errors name `field`."""
    variables = load_weights(weights_path, "fid_inception", field=field).params
    fc_kernel = np.asarray(variables["params"]["fc"]["kernel"])

    def extract(batches, name="inception", total=None):
        pool3, _ = extract_inception_features(variables, (to_rgb(b) for b in batches),
                                              mesh=mesh, batch_size=batch_size, name=name,
                                              total=total)
        return pool3, fid_lib.inception_score_logits(pool3, fc_kernel)

    return FeatureBackend("inception", POOL3_DIM, extract)


def digits_backend(resolution: int = 8, steps: int = 600, seed: int = 0) -> FeatureBackend:
    """Penultimate features (64) and logits (10) of the digits CNN, trained here on all digits."""
    apply_fn, params, train_accuracy = train_digits_classifier(resolution, seed=seed, steps=steps)

    def extract(batches, name="digits", total=None):
        del name, total  # a small CNN: fast enough to need no progress lines
        # The CNN reads one channel; RGB copies of grayscale images (PIL's convert) are equal.
        outs = [digits_features(apply_fn, params, np.asarray(b)[..., :1]) for b in batches]
        return (np.concatenate([o[1] for o in outs]), np.concatenate([o[0] for o in outs]))

    return FeatureBackend("digits", 64, extract, info=dict(train_accuracy=train_accuracy))


def fashion_backend(cache_dir, resolution: int = 28, steps: int = classifier_lib.FASHION_STEPS,
                    seed: int = 0, path: str = "", **settings) -> FeatureBackend:
    """Penultimate features and logits (10) of the Fashion-MNIST CNN (`fashion_classifier`:
    loaded from `cache_dir` when trained there with these settings, else trained and cached;
    `settings` are its other arguments), for uint8 images of `resolution` (28, or 32
    zero-padded) and 1 channel (or 3 equal ones)."""
    net = classifier_lib.fashion_classifier(cache_dir, resolution=resolution, steps=steps,
                                            seed=seed, path=path, **settings)  # logs accuracy

    def extract(batches, name="fashion_mnist", total=None):
        del name, total  # a small CNN: fast enough to need no progress lines
        outs = []
        for b in batches:
            b = np.asarray(b)
            if b.shape[1:3] != (resolution, resolution):
                raise ValueError(f"the Fashion-MNIST classifier was trained at {resolution}x"
                                 f"{resolution}, got images of {b.shape[1:3]}")
            outs.append(classifier_lib.features(net.apply_fn, net.params, b[..., :1]))
        return (np.concatenate([o[1] for o in outs]), np.concatenate([o[0] for o in outs]))

    return FeatureBackend("fashion_mnist", net.feature_dim, extract,
                          info=dict(test_accuracy=net.test_accuracy,
                                    train_accuracy=net.train_accuracy, settings=net.settings))


def sample_batches(shard_dir, batch_size: int, num_samples: int | None = None):
    """(number of samples, iterator of uint8 batches) over a shard directory's first
    `num_samples` images (default: the manifest's `num_samples`)."""
    manifest = shards.read_manifest(shard_dir)
    available = int(manifest["num_samples"])
    if num_samples is None:
        num_samples = available
    elif num_samples > available:
        raise ValueError(f"asked for {num_samples} samples, {shard_dir} holds {available}")
    images = (im for im, _ in shards.iter_shards(shard_dir))
    return num_samples, rebatch(images, batch_size, limit=num_samples)


def parse_metrics(text: str | Sequence[str]) -> tuple[str, ...]:
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text)]
    names = [m for m in names if m]
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metrics {unknown or names}; choose from {ALL_METRICS}")
    return tuple(dict.fromkeys(names))


DEGENERATE_SPREAD = 1e-6


def check_not_degenerate(ref_features=None, ref_stats=None) -> None:
    """Raises `NonFiniteError` when the reference features barely vary between images (e.g. an
    Inception with random or broken weights maps every image to the same features): every
    distance computed on them would be meaningless (FID ~1e-19), not small."""
    if ref_features is not None:
        f = np.asarray(ref_features, np.float64)
        spread, scale = f.std(axis=0).max(), np.abs(f.mean(axis=0)).max()
    elif ref_stats is not None:
        mu, sigma = ref_stats
        spread, scale = np.sqrt(max(np.diag(sigma).max(), 0.0)), np.abs(mu).max()
    else:
        return
    if not spread > DEGENERATE_SPREAD * (1.0 + scale):
        raise NonFiniteError(f"[evaluate] the reference features barely vary between images "
                             f"(largest std {spread:.3g} for values up to {scale:.3g}): the "
                             "feature network maps every image to the same point, so FID / "
                             "precision / recall would be meaningless; check the feature "
                             "network's weights (e.g. eval.inception_weights)")


def compute_metrics(features, score_logits, metrics: Sequence[str], *,
                    ref_stats: tuple[np.ndarray, np.ndarray] | None = None,
                    ref_features: np.ndarray | None = None, num_splits: int = 10, k: int = 3,
                    kid_subsets: int = 100, kid_subset_size: int = 1000) -> dict:
    """The requested metrics of generated `features` / `score_logits` against the reference.

    FID uses `ref_stats` (mu, sigma) when given, else the statistics of `ref_features`;
    precision/recall and KID need `ref_features`. Returns a flat dict of floats: `fid`,
    `is_mean`/`is_std`, `precision`/`recall`, `kid`.
    """
    features = np.asarray(features)
    needs = [m for m in metrics if m in METRICS_NEEDING_REF_FEATURES]
    if needs and ref_features is None:
        raise ValueError(f"metrics {needs} need reference images (features), not just "
                         "reference statistics")
    ref_width = (ref_stats[0].shape[0] if ref_stats is not None
                 else None if ref_features is None else np.shape(ref_features)[1])
    if ref_width is not None and ref_width != features.shape[1]:
        raise ValueError(f"reference feature width {ref_width} != sample feature width "
                         f"{features.shape[1]}")
    check_not_degenerate(ref_features, ref_stats)
    out = {}
    if "fid" in metrics:
        if ref_stats is None:
            if ref_features is None:
                raise ValueError("FID needs reference statistics or reference features")
            ref_stats = feature_statistics(ref_features)
        out["fid"] = fid_lib.frechet_distance(*feature_statistics(features), *ref_stats)
    if "is" in metrics:
        out["is_mean"], out["is_std"] = fid_lib.inception_score(score_logits, num_splits)
    if "pr" in metrics:
        out["precision"], out["recall"] = precision_recall(ref_features, features, k=k)
    if "kid" in metrics:
        out["kid"] = fid_lib.kernel_inception_distance(
            features, ref_features, num_subsets=kid_subsets, max_subset_size=kid_subset_size)
    return {key: float(v) for key, v in out.items()}
