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
from typing import Mapping, Optional

import jax
import jax.numpy as jnp

from dg_jax.models.adm import EncoderUNetModel


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
        tau = jnp.broadcast_to(jnp.asarray(tau), x_vp.shape[:1])
        feats = self.features(params, x_vp, tau)
        return self.head_logit(params["head"], feats, tau, labels, train=train, rng=rng)

    def head_logit(self, head_params: Mapping, feats, tau, labels=None, *, train: bool = False,
                   rng: Optional[jax.Array] = None):
        """The head alone on (precomputed) classifier features: logit = head_logit(head,
        features(x_vp, tau), tau, labels)."""
        tau = jnp.broadcast_to(jnp.asarray(tau), feats.shape[:1])
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
        return c.init(rng, feats, jnp.zeros((1,), jnp.float32), labels)


def discriminator_logit(disc: DGDiscriminator, params: Mapping, x_vp, tau, labels=None):
    """Pre-sigmoid DG discriminator output (N,); see `DGDiscriminator.logit`."""
    return disc.logit(params, x_vp, tau, labels)


def discriminator_prob(disc: DGDiscriminator, params: Mapping, x_vp, tau, labels=None):
    """DG discriminator probability d = sigmoid(logit), (N,)."""
    return disc.prob(params, x_vp, tau, labels)

