"""DG's discriminator from a config section (`disc`) and the data rng of the image pipelines.

`build_discriminator` / `load_pretrained_discriminator` read config.disc and config.data; a
latent pipeline passes a config whose data.resolution / data.channels are the latent grid's
(`dit_dg.models.latent_view`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from dg_jax import rng
from dg_jax.convert.saved import load_weights
from dg_jax.errors import ConfigError
from dg_jax.models.dg_discriminator import Discriminator, discriminator_from_spec


def data_rng(config) -> np.random.Generator:
    """The generator of data.subset_size's subset (the 'random' smoke source: a fixed one)."""
    if config.data.get("source") == "random":
        return np.random.default_rng(0)
    return rng.numpy(config.seed, "data", "subset")


def build_discriminator(config, compute_dtype: Optional[str] = None,
                        classifier=None) -> Discriminator:
    """The discriminator of config.disc (`dg_jax.models.dg_discriminator.discriminator_from_spec`),
    on `classifier` = (module, params) when given (the classifier stage's), else DG's ADM
    classifier read from disc.classifier, else random frozen weights; `compute_dtype` (default
    disc.compute_dtype, else float32) overrides the ADM classifier's and head's compute dtype."""
    c, d = config.disc, config.data
    spec = c.to_dict()
    if compute_dtype is not None:
        spec["compute_dtype"] = compute_dtype
    classifier, c_params = classifier if classifier is not None else (None, None)
    if classifier is None and c.kind == "adm" and c.classifier:
        conv = load_weights(c.classifier, "adm_classifier", field="disc.classifier",
                            flags=c.classifier_flags.to_dict())
        classifier, c_params = conv.model, conv.params
    return discriminator_from_spec(spec, (d.resolution, d.resolution, d.channels), d.num_classes,
                                   rng.key(config.seed, "init", "disc"),
                                   rng.key(config.seed, "init", "disc_head"),
                                   classifier=classifier, classifier_params=c_params)


def load_pretrained_discriminator(config) -> Discriminator:
    """DG's trained discriminator (disc.source='converted'): disc.checkpoint is a
    `launch.convert --kind=dg_discriminator` folder, or DG's head `.pt` itself with
    disc.classifier (DG's ADM classifier .pt) and disc.classifier_flags / disc.head_flags.
    Nothing is trained; `trainable` is the head's parameters."""
    c, d = config.disc, config.data
    conv = load_weights(c.checkpoint, "dg_discriminator", field="disc.checkpoint",
                        flags=c.classifier_flags.to_dict() or None,
                        head_flags=c.head_flags.to_dict() or None,
                        classifier=c.classifier or None)
    disc, params = conv.model, conv.params
    if disc.classifier.image_size != d.resolution:
        raise ConfigError(f"disc.checkpoint {c.checkpoint}: the classifier expects "
                          f"{disc.classifier.image_size}x{disc.classifier.image_size} images but "
                          f"data.resolution is {d.resolution}")
    if disc.head.num_classes is not None and not d.num_classes:
        raise ConfigError(f"disc.checkpoint {c.checkpoint} holds a class-conditional head; it "
                          "needs a class-conditional score model (data.num_classes > 0)")
    return Discriminator.frozen_classifier(disc, params["classifier"], params["head"])
