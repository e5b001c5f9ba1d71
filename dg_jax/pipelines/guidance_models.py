"""Networks, processes and data of the guidance-training pipeline, built from typed config fields.

Each builder reads named fields only and raises naming the offending field.
"""
from __future__ import annotations

import numpy as np

from dg_jax.data.digits import load_digits_float
from dg_jax.diffusion.iddpm import DiscreteDiffusion, create_gaussian_diffusion
from dg_jax.models.adm import EncoderUNetModel, UNetModel

DATA_SOURCES = ("digits", "npz", "random")


def load_data(d) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 NHWC in [-1, 1], integer labels) from data.source."""
    if d.source == "digits":
        images, labels = load_digits_float(d.resolution)
    elif d.source == "npz":
        from dg_jax.data.shards import load_npz_dataset

        images_u8, labels = load_npz_dataset(d.path)
        images = images_u8.astype(np.float32) / 127.5 - 1.0
        if labels is None:
            labels = np.zeros(len(images), np.int32)
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(-1)
    elif d.source == "random":  # synthetic images: smoke runs of the paper configs only
        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, (256, d.resolution, d.resolution, d.channels))
        images = images.astype(np.float32)
        labels = rng.integers(0, max(d.num_classes, 1), 256)
    else:
        raise ValueError(f"unknown data source {d.source!r} (field 'data.source'); choose one "
                         f"of {list(DATA_SOURCES)}")
    expected = (d.resolution, d.resolution, d.channels)
    if images.shape[1:] != expected:
        raise ValueError(f"data {d.source} {d.path} has images of shape {images.shape[1:]}, but "
                         f"data.resolution/data.channels ask for {expected}")
    return images, np.asarray(labels, np.int32)


def split_holdout(images, labels, holdout: int):
    """(train images, train labels, held-out images): the last `holdout` rows are held out."""
    if holdout < 0 or holdout >= len(images):
        raise ValueError(f"data.holdout={holdout} must lie in [0, {len(images)})")
    cut = len(images) - holdout
    return images[:cut], labels[:cut], images[cut:]


def make_diffusion(dflags, respacing: str = "",
                   field: str = "score.diffusion") -> DiscreteDiffusion:
    """guided-diffusion's create_gaussian_diffusion from a `diffusion` config section."""
    try:
        return create_gaussian_diffusion(
            steps=int(dflags.diffusion_steps), learn_sigma=bool(dflags.learn_sigma),
            sigma_small=bool(dflags.sigma_small), noise_schedule=str(dflags.noise_schedule),
            use_kl=bool(dflags.use_kl), predict_xstart=bool(dflags.predict_xstart),
            rescale_timesteps=False, rescale_learned_sigmas=bool(dflags.rescale_learned_sigmas),
            timestep_respacing=respacing)
    except (ValueError, AttributeError) as err:
        raise ValueError(f"{field}: {err}") from err


def _check_groupnorm(channels, field: str) -> None:
    bad = [c for c in channels if c % 32]
    if bad:
        raise ValueError(f"{field}: GroupNorm32 needs channel counts that are multiples of 32; "
                         f"got {bad}")


def build_unet(u, d, *, learn_sigma: bool, num_classes, field: str = "score.unet") -> UNetModel:
    """guided-diffusion UNetModel from explicit fields (attention_resolutions as image sizes)."""
    mult = tuple(int(m) for m in u.channel_mult)
    _check_groupnorm([u.model_channels * m for m in mult], f"{field}.model_channels")
    if d.resolution % (2 ** (len(mult) - 1)):
        raise ValueError(f"{field}.channel_mult={mult} downsamples {len(mult) - 1} times, "
                         f"which data.resolution={d.resolution} does not allow")
    return UNetModel(
        image_size=d.resolution, in_channels=d.channels, model_channels=int(u.model_channels),
        out_channels=d.channels * (2 if learn_sigma else 1), num_res_blocks=int(u.num_res_blocks),
        attention_resolutions=tuple(d.resolution // int(r) for r in u.attention_resolutions),
        dropout=float(u.dropout), channel_mult=mult, num_classes=num_classes,
        num_heads=int(u.num_heads), num_head_channels=int(u.num_head_channels),
        use_scale_shift_norm=bool(u.use_scale_shift_norm),
        resblock_updown=bool(u.resblock_updown),
        use_new_attention_order=bool(u.use_new_attention_order))


def build_classifier(c, d, field: str = "classifier.model") -> EncoderUNetModel:
    """The noisy classifier: an ADM encoder over integer model timesteps, data.num_classes
    outputs."""
    mult = tuple(int(m) for m in c.channel_mult)
    _check_groupnorm([c.model_channels * m for m in mult], f"{field}.model_channels")
    if d.num_classes < 2:
        raise ValueError(f"a classifier needs data.num_classes >= 2, got {d.num_classes}")
    return EncoderUNetModel(
        image_size=d.resolution, in_channels=d.channels, model_channels=int(c.model_channels),
        out_channels=int(d.num_classes), num_res_blocks=int(c.num_res_blocks),
        attention_resolutions=tuple(d.resolution // int(r) for r in c.attention_resolutions),
        channel_mult=mult, num_head_channels=int(c.num_head_channels),
        use_scale_shift_norm=bool(c.use_scale_shift_norm),
        resblock_updown=bool(c.resblock_updown), pool=str(c.pool), time_scale=1.0)


def score_num_classes(config):
    """Label-embedding size of the score UNet: None (unconditional), K, or K + 1 with the null
    label K when labels are dropped for classifier-free guidance."""
    s, d = config.score, config.data
    if not s.class_cond:
        return None
    return d.num_classes + (1 if s.p_uncond > 0 else 0)
