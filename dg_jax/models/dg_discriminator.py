"""Discriminator Guidance's discriminator (Kim et al. 2023; alsdudrla10/DG `classifier_lib.py`).

d(x_t, tau) = sigmoid(head(features(x_t, tau), tau, labels)), where `features` is the output of
the middle block of a pretrained ADM classifier (an EncoderUNetModel, frozen during training)
and `head` a small EncoderUNetModel on those features (DG: image_size 8, one output, optional
1000-way label embedding). Both take DG's continuous VP time tau in [0, 1] (x999 inside).

Parameters are a dict {'classifier': {'params': ...}, 'head': {'params': ...}}. Nothing is
stop-gradient'ed: the guidance gradient grad_x log(d / (1 - d)) flows through the classifier to
x; keeping the classifier frozen is the trainer's job (optimise only params['head']).
`disc.logit` / `disc.prob` are pure functions of (params, x_vp, tau, labels); loading the
official checkpoints: `dg_jax.convert.adm.load_dg_discriminator`.
Arrays are NHWC; x_vp is the VP-scaled input mean(tau) x_0 + std(tau) eps.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp

from dg_jax.broadcast import per_example
from dg_jax.errors import ConfigError
from dg_jax.models.adm import EncoderUNetModel
from dg_jax.models.adm_flags import classifier_from_flags
from dg_jax.models.conv_disc import ConvDiscriminator


@dataclasses.dataclass(frozen=True)
class DGDiscriminator:
    """The two networks of a DG discriminator (module definitions only; params are explicit)."""

    classifier: EncoderUNetModel
    head: EncoderUNetModel

    def features(self, params: Mapping, x_vp, tau):
        """Middle-block output of the classifier, (N, H', W', C') in float32."""
        return self.classifier.apply(params["classifier"], x_vp.astype(jnp.float32), tau,
                                     feature=True)

    def logit(self, params: Mapping, x_vp, tau, labels=None, *, train: bool = False,
              rng: Optional[jax.Array] = None):
        """Pre-sigmoid discriminator output, shape (N,). `labels` (integers or one-hot rows) only
        for a conditional head; `train`/`rng` enable the head's dropout."""
        tau = per_example(tau, x_vp.shape[0])
        feats = self.features(params, x_vp, tau)
        return self.head_logit(params["head"], feats, tau, labels, train=train, rng=rng)

    def head_logit(self, head_params: Mapping, feats, tau, labels=None, *, train: bool = False,
                   rng: Optional[jax.Array] = None):
        """The head alone on (precomputed) classifier features: logit = head_logit(head,
        features(x_vp, tau), tau, labels)."""
        tau = per_example(tau, feats.shape[0])
        if self.head.num_classes is None:
            labels = None
        elif labels is None:
            raise ValueError("this DG discriminator head is class-conditional: pass labels")
        rngs = {"dropout": rng} if rng is not None else None
        out = self.head.apply(head_params, feats, tau, labels, train=train, rngs=rngs)
        return out.reshape(-1)

    def prob(self, params: Mapping, x_vp, tau, labels=None, **kwargs):
        """d = sigmoid(logit), shape (N,)."""
        return jax.nn.sigmoid(self.logit(params, x_vp, tau, labels, **kwargs))

    def bind(self, params: Mapping):
        """logit_fn(x_vp, tau, labels) with the params closed over (for `dg_correction_fn`)."""
        return lambda x_vp, tau, labels=None: self.logit(params, x_vp, tau, labels)

    def init_head(self, rng: jax.Array) -> dict:
        """Fresh head variables (guided-diffusion's initialisation), to train from scratch."""
        c = self.head
        feats = jnp.zeros((1, c.image_size, c.image_size, c.in_channels), jnp.float32)
        labels = jnp.zeros((1,), jnp.int32) if c.num_classes is not None else None
        return jax.jit(c.init)(rng, feats, jnp.zeros((1,), jnp.float32), labels)


def discriminator_logit(disc: DGDiscriminator, params: Mapping, x_vp, tau, labels=None):
    """Pre-sigmoid DG discriminator output (N,); see `DGDiscriminator.logit`."""
    return disc.logit(params, x_vp, tau, labels)


def discriminator_prob(disc: DGDiscriminator, params: Mapping, x_vp, tau, labels=None):
    """DG discriminator probability d = sigmoid(logit), (N,)."""
    return disc.prob(params, x_vp, tau, labels)



# --------------------------------------------------------- what training and sampling hold
@dataclasses.dataclass
class Discriminator:
    """logit(trainable, x_vp, tau, labels) with frozen parts closed over; `trainable` is the
    initial value of what the optimiser updates. A frozen-feature discriminator (DG's ADM kind)
    also has features(x_vp, tau) and head_logit(trainable, feats, tau, labels), with
    logit = head_logit(trainable, features(x_vp, tau), tau, labels), for precomputation."""

    logit: Callable
    trainable: Any
    features: Optional[Callable] = None
    head_logit: Optional[Callable] = None

    def bind(self, trainable):
        return lambda x_vp, tau, labels=None: self.logit(trainable, x_vp, tau, labels)

    @classmethod
    def frozen_classifier(cls, disc: DGDiscriminator, classifier_params,
                          head_params) -> "Discriminator":
        """DG's discriminator with its classifier frozen: only the head is trainable."""

        def logit(head, x_vp, tau, labels=None):
            return disc.logit({"classifier": classifier_params, "head": head}, x_vp, tau, labels)

        def features(x_vp, tau):
            return disc.features({"classifier": classifier_params}, x_vp, tau)

        return cls(logit, head_params, features, disc.head_logit)


DISC_KINDS = ("conv", "adm")


def conv_discriminator(key, image_shape: Sequence[int], *, channels: Sequence[int],
                       time_embed_dim: int, num_classes: Optional[int] = None) -> Discriminator:
    """A small time-conditioned conv discriminator trained from scratch (all trainable)."""
    model = ConvDiscriminator(channels=tuple(channels), time_embed_dim=time_embed_dim,
                              num_classes=num_classes)
    y = jnp.zeros((1,), jnp.int32) if num_classes is not None else None
    params = model.init(key, jnp.zeros((1, *image_shape)), jnp.zeros((1,)), y)
    return Discriminator(lambda p, xv, tau, labels=None: model.apply(p, xv, tau, labels), params)


def adm_discriminator(classifier: EncoderUNetModel, classifier_params, head_flags: Mapping,
                      head_key, *, conditional: bool = False, compute_dtype: str = "float32",
                      attention_impl: str = "auto") -> Discriminator:
    """DG's discriminator: the frozen ADM `classifier` (time in VP tau) and a fresh head built
    from guided-diffusion classifier flags `head_flags`, in `compute_dtype`."""
    head_flags = dict(head_flags)
    if conditional:
        head_flags["condition"] = True
    if compute_dtype != "float32":
        classifier = classifier.clone(compute_dtype=compute_dtype)
        head_flags["compute_dtype"] = compute_dtype
    classifier = classifier.clone(attention_impl=attention_impl)  # models/attention.py
    head_flags["attention_impl"] = attention_impl
    disc = DGDiscriminator(classifier, classifier_from_flags(head_flags, dg_time=True))
    return Discriminator.frozen_classifier(disc, classifier_params, disc.init_head(head_key))


def discriminator_from_spec(spec: Mapping, image_shape: Sequence[int], num_classes: int, key,
                            head_key, *, classifier: Optional[EncoderUNetModel] = None,
                            classifier_params=None, field: str = "disc",
                            data_field: str = "data") -> Discriminator:
    """The discriminator a model config section describes: `kind` ('conv': `channels`,
    `time_embed_dim`; 'adm': `classifier_flags` (or a loaded `classifier` and its params),
    `head_flags`), `conditional`, `compute_dtype`, `attention_impl`. Random frozen classifier
    weights (no `classifier_params`) are for smoke tests and benchmarks. Errors name
    `field.<key>` and `data_field.resolution`."""
    kind = spec.get("kind")
    dtype = spec.get("compute_dtype", "float32")
    conditional = bool(spec.get("conditional", False))
    if kind not in DISC_KINDS:
        raise ConfigError(f"unknown {field}.kind {kind!r}; choose one of {list(DISC_KINDS)}")
    if kind == "conv":
        if dtype != "float32":
            raise ConfigError(f"{field}.compute_dtype={dtype!r}: {field}.kind='conv' has no "
                              f"compute dtype; use {field}.kind='adm' or float32")
        return conv_discriminator(key, image_shape, channels=spec["channels"],
                                  time_embed_dim=spec["time_embed_dim"],
                                  num_classes=num_classes if conditional else None)
    if classifier is None:
        classifier = classifier_from_flags(dict(spec.get("classifier_flags", {})), dg_time=True)
    if classifier.image_size != image_shape[0]:
        raise ConfigError(f"the {field} classifier expects {classifier.image_size}x"
                          f"{classifier.image_size} images but {data_field}.resolution is "
                          f"{image_shape[0]}")
    if classifier_params is None:
        classifier_params = jax.jit(classifier.init)(key, jnp.zeros((1, *image_shape)),
                                                     jnp.zeros((1,)))
    return adm_discriminator(classifier, classifier_params, spec.get("head_flags", {}), head_key,
                             conditional=conditional, compute_dtype=dtype,
                             attention_impl=spec.get("attention_impl", "auto"))
