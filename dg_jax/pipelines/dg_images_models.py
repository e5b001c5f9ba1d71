"""Building the image DG pipeline's networks and data from its config (typed fields only)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.data.digits import load_digits_float
from dg_jax.errors import ConfigError

DATA_SOURCES = ("digits", "npz", "folder", "tfds", "random")


def load_real(config):
    """Real training images in [-1, 1] (NHWC float32) and integer labels."""
    d = config.data
    if d.source == "digits":
        images, labels = load_digits_float(d.resolution)
    elif d.source == "npz":
        from dg_jax.data import shards

        images_u8, labels = shards.load_npz_dataset(d.path)
        images = images_u8.astype(np.float32) / 127.5 - 1.0
        if labels is None:
            labels = np.zeros(len(images), np.int32)
    elif d.source in ("folder", "tfds"):
        images_u8, labels = _load_folder_or_tfds(d)
        images = images_u8.astype(np.float32) / 127.5 - 1.0
    elif d.source == "random":  # synthetic images for smoke runs of the paper configs only
        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, (256, d.resolution, d.resolution, d.channels)).astype(np.float32)
        labels = rng.integers(0, max(d.num_classes, 1), 256).astype(np.int32)
    else:
        raise ConfigError(f"unknown data source {d.source!r} (field 'data.source'); choose "
                         "'digits', 'npz', 'folder', 'tfds' or 'random'")
    expected = (d.resolution, d.resolution, d.channels)
    if images.shape[1:] != expected:
        raise ConfigError(f"data {d.source} {d.path} has images of shape {images.shape[1:]}, but "
                         f"data.resolution/data.channels ask for {expected}")
    return images, labels


def _load_folder_or_tfds(d):
    """uint8 images and int32 labels from an image folder (data.path; labels: the sorted
    first-level subfolders, when there are any) or a TFDS dataset (data.path = its name,
    optional data.split / data.data_dir / data.manual_dir; labels from the 'label' feature when
    data.num_classes > 0). TFDS needs the optional extra '[tf]'."""
    from dg_jax.eval import reference

    if d.source == "folder":
        files = reference.list_image_files(d.path)
        images = reference.load_image_folder(d.path)
        if d.channels == 1:
            images = images[..., :1]
        top = [f.relative_to(d.path).parts for f in files]
        classes = sorted({p[0] for p in top if len(p) > 1})
        labels = np.asarray([classes.index(p[0]) if len(p) > 1 else 0 for p in top], np.int32)
        return images, labels
    get = lambda k, default=None: d.get(k, default)  # noqa: E731
    kwargs = dict(split=get("split", "train"), data_dir=get("data_dir") or None,
                  manual_dir=get("manual_dir") or None)
    if d.num_classes:
        pairs = list(reference.iter_tfds_images(d.path, label_key="label", **kwargs))
        return (np.concatenate([p[0] for p in pairs]),
                np.concatenate([p[1] for p in pairs]))
    images = np.concatenate(list(reference.iter_tfds_images(d.path, **kwargs)))
    return images, np.zeros(len(images), np.int32)


def build_score_model(config):
    """(precond, params): EDM preconditioned network from score.arch, a converted checkpoint
    (score.checkpoint, made by launch.convert) or random init of score.arch."""
    s = config.score
    if s.source == "converted":
        from dg_jax.convert.saved import load_weights

        conv = load_weights(s.checkpoint, "edm", field="score.checkpoint")
        precond, params = conv.model, conv.params
    elif s.source in ("train", "random"):
        from dg_jax.models.edm_precond import edm_precond_from_kwargs

        precond = edm_precond_from_kwargs(s.arch.class_name, s.arch.init_kwargs.to_dict())
        res, ch = precond.img_resolution, precond.img_channels
        labels = jnp.zeros((1, precond.label_dim)) if precond.label_dim else None
        params = precond.model.init(jax.random.PRNGKey(config.seed), jnp.zeros((1, res, res, ch)),
                                    jnp.zeros((1,)), labels)["params"]
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
    dtype = s.get("compute_dtype", "float32")
    if dtype != "float32":  # bfloat16 compute, float32 parameters and sampler state
        precond = score_model_in(precond, dtype, "score.compute_dtype")
    impl = s.get("attention_impl", "auto")
    if impl != "auto" and hasattr(precond, "model") and hasattr(precond.model, "attention_impl"):
        precond = dataclasses.replace(precond, model=precond.model.clone(attention_impl=impl))
    return precond, params


def score_model_in(precond, dtype: str, field: str = "compute_dtype"):
    """The EDM preconditioner with its U-Net computing in `dtype` (parameters unchanged; the
    preconditioning, noise embedding and sampler state stay float32)."""
    from dg_jax.models.precision import compute_dtype as check_dtype

    check_dtype(dtype, field)
    if not hasattr(precond, "model") or "compute_dtype" not in precond.model.__dataclass_fields__:
        raise ConfigError(f"{field}={dtype!r}: the score model {type(precond).__name__} has no "
                         "compute dtype (EDM SongUNet/DhariwalUNet only)")
    return dataclasses.replace(precond, model=precond.model.clone(compute_dtype=dtype))


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


def build_discriminator(config, compute_dtype: Optional[str] = None) -> Discriminator:
    """The discriminator of config.disc; `compute_dtype` (default disc.compute_dtype, else
    float32) sets the ADM classifier's and head's compute dtype (the 'conv' kind is float32)."""
    c, d = config.disc, config.data
    dtype = compute_dtype or c.get("compute_dtype", "float32")
    if c.kind != "adm" and dtype != "float32":
        raise ConfigError(f"disc.compute_dtype={dtype!r}: disc.kind={c.kind!r} has no compute "
                         "dtype; use disc.kind='adm' or float32")
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 13)
    x = jnp.zeros((1, d.resolution, d.resolution, d.channels))
    t = jnp.zeros((1,))
    if c.kind == "conv":
        from dg_jax.models.conv_disc import ConvDiscriminator

        model = ConvDiscriminator(channels=tuple(c.channels), time_embed_dim=c.time_embed_dim,
                                  num_classes=d.num_classes if c.conditional else None)
        y = jnp.zeros((1,), jnp.int32) if c.conditional else None
        params = model.init(key, x, t, y)
        return Discriminator(lambda p, xv, tau, labels=None: model.apply(p, xv, tau, labels), params)
    if c.kind == "adm":
        from dg_jax.models.adm_flags import classifier_from_flags
        from dg_jax.models.dg_discriminator import DGDiscriminator

        if c.classifier:
            from dg_jax.convert.saved import load_weights

            conv = load_weights(c.classifier, "adm_classifier", field="disc.classifier",
                                flags=c.classifier_flags.to_dict())
            classifier, c_params = conv.model, conv.params
        else:  # random frozen features: smoke tests only
            classifier = classifier_from_flags(c.classifier_flags.to_dict(), dg_time=True)
            c_params = None
        if classifier.image_size != d.resolution:
            raise ConfigError(f"disc classifier expects {classifier.image_size}x"
                             f"{classifier.image_size} images but data.resolution is {d.resolution}")
        if c_params is None:
            c_params = classifier.init(key, x, t)
        head_flags = c.head_flags.to_dict()
        if c.conditional:
            head_flags["condition"] = True
        if dtype != "float32":
            classifier = classifier.clone(compute_dtype=dtype)
            head_flags["compute_dtype"] = dtype
        impl = c.get("attention_impl", "auto")  # models/attention.py
        classifier = classifier.clone(attention_impl=impl)
        head_flags["attention_impl"] = impl
        disc = DGDiscriminator(classifier, classifier_from_flags(head_flags, dg_time=True))
        head = disc.init_head(jax.random.fold_in(key, 1))

        def logit(head_params, x_vp, tau, labels=None):
            return disc.logit({"classifier": c_params, "head": head_params}, x_vp, tau, labels)

        def features(x_vp, tau):
            return disc.features({"classifier": c_params}, x_vp, tau)

        return Discriminator(logit, head, features, disc.head_logit)
    raise ConfigError(f"unknown disc.kind {c.kind!r}; choose 'conv' or 'adm'")


def load_pretrained_discriminator(config) -> Discriminator:
    """DG's trained discriminator (disc.source='converted'): disc.checkpoint is a
    `launch.convert --kind=dg_discriminator` folder, or DG's head `.pt` itself with
    disc.classifier (DG's ADM classifier .pt) and disc.classifier_flags / disc.head_flags.
    Nothing is trained; `trainable` is the head's parameters."""
    from dg_jax.convert.saved import load_weights

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
    c_params = params["classifier"]

    def logit(head_params, x_vp, tau, labels=None):
        return disc.logit({"classifier": c_params, "head": head_params}, x_vp, tau, labels)

    def features(x_vp, tau):
        return disc.features({"classifier": c_params}, x_vp, tau)

    return Discriminator(logit, params["head"], features, disc.head_logit)


def check_fake_matches(config, images: np.ndarray, labels) -> None:
    d = config.data
    expected = (d.resolution, d.resolution, d.channels)
    if images.shape[1:] != expected:
        raise ConfigError(f"generated samples have shape {images.shape[1:]} but the discriminator "
                         f"is for {expected} (data.resolution/data.channels)")
    if config.disc.conditional and labels is None:
        raise ConfigError("disc.conditional=True needs labelled generated samples")
