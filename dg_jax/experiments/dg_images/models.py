"""Building the image DG pipeline's networks and data from its config (typed fields only)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dg_jax import rng
from dg_jax.convert.saved import load_weights
from dg_jax.data.images import load_from_config
from dg_jax.errors import ConfigError
from dg_jax.experiments.kit.discriminators import (  # noqa: F401  (the pipeline's builders)
    build_discriminator,
    data_rng,
    load_pretrained_discriminator,
)
from dg_jax.models.adm_flags import classifier_from_flags
from dg_jax.models.edm_precond import edm_precond_from_kwargs, init_precond_params, with_compute

DATA_SOURCES = ("digits", "npz", "folder", "tfds", "cifar10", "fashion_mnist", "random")
# eval.reference: the images FD is measured against ('data': the training images; 'test': the
# source's test split, e.g. Fashion-MNIST's 10,000)
REFERENCES = ("data", "test")


def load_real(config):
    """Real training images in [-1, 1] (NHWC float32) and int32 labels from config.data
    (`dg_jax.data.images`; data.subset_size draws its class-balanced subset from
    rng.numpy(seed, 'data', 'subset'); the 'random' smoke source draws from a fixed
    generator)."""
    return load_from_config(config.data, rng=data_rng(config), sources=DATA_SOURCES)


def load_reference(config):
    """The evaluation reference (eval.reference): the training images `load_real` gives, or
    the source's test split (every image; no subset)."""
    d = ml_collections.ConfigDict(config.data.to_dict())
    d.update(split="test", subset_size=0)
    return load_from_config(d, rng=np.random.default_rng(0), sources=DATA_SOURCES)




def build_dg_classifier(config):
    """The ADM classifier (DG's continuous VP time) of disc.classifier_flags with in_channels,
    out_channels (data.num_classes) and image_size from the data, and its fresh parameters;
    trained by the classifier stage when disc.classifier_train.num_steps > 0."""
    c, d = config.disc, config.data
    flags = dict(c.classifier_flags.to_dict())
    for key, value in (("image_size", d.resolution), ("in_channels", d.channels),
                       ("out_channels", d.num_classes)):
        if key in flags and int(flags[key]) != int(value):
            raise ConfigError(f"disc.classifier_flags.{key}={flags[key]} contradicts the data "
                              f"({value}); leave it out to train the classifier here")
        flags[key] = int(value)
    if d.num_classes < 2:
        raise ConfigError("disc.classifier_train.num_steps > 0 trains a noisy classifier: it "
                          f"needs labelled data (data.num_classes >= 2, got {d.num_classes})")
    try:
        module = classifier_from_flags(flags, dg_time=True)
    except ValueError as err:
        raise ConfigError(f"disc.classifier_flags: {err}") from err
    shape = (1, d.resolution, d.resolution, d.channels)
    params = jax.jit(module.init)(rng.key(config.seed, "init", "classifier"), jnp.zeros(shape),
                                  jnp.zeros((1,)))
    return module, params


def build_score_model(config):
    """(precond, params): EDM preconditioned network from score.arch, a converted checkpoint
    (score.checkpoint, made by launch.convert) or random init of score.arch."""
    s = config.score
    if s.source == "converted":
        conv = load_weights(s.checkpoint, "edm", field="score.checkpoint")
        precond, params = conv.model, conv.params
    elif s.source in ("train", "random"):
        precond = edm_precond_from_kwargs(s.arch.class_name, s.arch.init_kwargs.to_dict())
        params = init_precond_params(precond, rng.key(config.seed, "init", "score"))
    else:
        raise ConfigError(f"unknown score.source {s.source!r}; choose 'train', 'converted' or "
                         "'random'")
    d = config.data
    if precond.img_resolution != d.resolution or precond.img_channels != d.channels:
        raise ConfigError(f"score model is {precond.img_resolution}x{precond.img_resolution}x"
                         f"{precond.img_channels} but data.resolution/channels are "
                         f"{d.resolution}/{d.channels}")
    if precond.label_dim != d.num_classes:
        raise ConfigError(f"score model has label_dim={precond.label_dim} but data.num_classes="
                         f"{d.num_classes}")
    return with_compute(precond, compute_dtype=s.get("compute_dtype", "float32"),
                        attention_impl=s.get("attention_impl", "auto"),
                        field="score.compute_dtype"), params


def trains_classifier(config) -> bool:
    c = config.disc
    return c.kind == "adm" and int(c.get("classifier_train", {}).get("num_steps", 0)) > 0


def check_fake_matches(config, images: np.ndarray, labels) -> None:
    d = config.data
    expected = (d.resolution, d.resolution, d.channels)
    if images.shape[1:] != expected:
        raise ConfigError(f"generated samples have shape {images.shape[1:]} but the discriminator "
                         f"is for {expected} (data.resolution/data.channels)")
    if config.disc.conditional and labels is None:
        raise ConfigError("disc.conditional=True needs labelled generated samples")
