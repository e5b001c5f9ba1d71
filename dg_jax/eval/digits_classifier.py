"""The digits evaluation network: `dg_jax.eval.classifier`'s CNN with its default layout, trained
on all 1,797 scikit-learn digits; the feature extractor and the scorer for the embedded image
experiments (Fréchet distance on its penultimate features, and whether samples show the class
they were asked for). Independent of every model it scores.

These are thin wrappers of `dg_jax.eval.classifier` whose results are those of the network's
original, digits-only code, bit for bit: its rng name stays "digits_classifier" (the keys
`rng.key(seed, "eval", "digits_classifier", "init" / "train")` and batches
`rng.numpy(seed, "eval", "digits_classifier", "batches")`), Adam at 2e-3, shifts of one pixel.
"""
from __future__ import annotations

from dg_jax.data.digits import load_digits_float
from dg_jax.eval.classifier import ClassifierCNN, features, train_classifier

# The digits network is the classifier's default layout (widths 32, 64, 64; one pool; 64
# features; 10 classes).
DigitsCNN = ClassifierCNN


def train_digits_classifier(resolution: int = 8, seed: int = 0, steps: int = 600,
                            batch_size: int = 128):
    """Trains on all digits with light shift augmentation; returns (apply_fn, params, accuracy)
    where apply_fn(params, x in [-1, 1] NHWC) -> (logits, features) and accuracy is on all
    (unaugmented) digits."""
    images, labels = load_digits_float(resolution)
    return train_classifier(images, labels, num_classes=10, steps=steps, batch_size=batch_size,
                            seed=seed, learning_rate=2e-3, augment_shift=1,
                            name="digits_classifier")


def digits_features(apply_fn, params, images, batch_size: int = 512):
    """(logits, features) for images given as uint8 or floats in [-1, 1], NHWC."""
    return features(apply_fn, params, images, batch_size)
