"""Networks, processes and data of the guidance-training pipeline.

The networks and processes are described in guided-diffusion's own flag vocabulary, the one
`dg_jax.models.adm_flags` reads for the DG pipeline too:
- `score.flags` / `vlb.flags`: `model_and_diffusion_defaults()` names (num_channels,
  num_res_blocks, channel_mult "1,2,2,2", attention_resolutions "16,8" as image sizes,
  num_heads, num_head_channels, dropout, class_cond, learn_sigma, use_scale_shift_norm,
  resblock_updown, use_new_attention_order, diffusion_steps, noise_schedule, use_kl, ...), built
  by `unet_from_flags` and `diffusion_from_flags`;
- `classifier.flags`: `classifier_defaults()` names (classifier_width, classifier_depth,
  classifier_attention_resolutions, classifier_use_scale_shift_norm, classifier_resblock_updown,
  classifier_pool, classifier_use_fp16), built by `classifier_from_flags` with integer model
  timesteps; plus `classifier_channel_mult` ("" = guided-diffusion's multipliers for the image
  size, else e.g. "1,2").
`image_size`, the image channels and the number of classes come from `data` (a flag that
contradicts them raises). Each builder raises naming the offending field.
"""
from __future__ import annotations

import numpy as np

from dg_jax import rng
from dg_jax.data.images import load_from_config
from dg_jax.diffusion.iddpm import DiscreteDiffusion, diffusion_from_flags
from dg_jax.models.adm import EncoderUNetModel, UNetModel
from dg_jax.models.adm_flags import DIFFUSION_FLAGS, classifier_from_flags, unet_from_flags

DATA_SOURCES = ("digits", "npz", "fashion_mnist", "random")
# the score model's process flags the classifier stage depends on (it trains on its q_sample)
SCORE_DIFFUSION_FIELDS = tuple(f"score.flags.{name}" for name in DIFFUSION_FLAGS)


def load_data(d, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 NHWC in [-1, 1], int32 labels) from data.source (`dg_jax.data.images`;
    data.subset_size draws its class-balanced subset from rng.numpy(seed, 'data', 'subset');
    the 'random' smoke source draws from a fixed generator)."""
    gen = (np.random.default_rng(0) if d.source == "random"
           else rng.numpy(seed, "data", "subset"))
    return load_from_config(d, rng=gen, sources=DATA_SOURCES)


def split_holdout(images, labels, holdout: int):
    """(train images, train labels, held-out images): the last `holdout` rows are held out."""
    if holdout < 0 or holdout >= len(images):
        raise ValueError(f"data.holdout={holdout} must lie in [0, {len(images)})")
    cut = len(images) - holdout
    return images[:cut], labels[:cut], images[cut:]


def _as_dict(flags) -> dict:
    return flags.to_dict() if hasattr(flags, "to_dict") else dict(flags)


def _from_data(flags: dict, field: str, **derived) -> dict:
    """flags with the entries that `data` decides (image_size, ...) filled in; a flag that
    contradicts data raises."""
    for key, value in derived.items():
        if key in flags and int(flags[key]) != value:
            raise ValueError(f"{field}.{key}={flags[key]} contradicts the data ({value}); leave it "
                             f"out, data.* decides it")
        flags[key] = value
    return flags


def _check_net(net, d, width_field: str, mult_field: str) -> None:
    bad = [int(net.model_channels * m) for m in net.channel_mult
           if int(net.model_channels * m) % 32]
    if bad:
        raise ValueError(f"{width_field}: GroupNorm32 needs channel counts that are multiples "
                         f"of 32; got {bad}")
    if d.resolution % (2 ** (len(net.channel_mult) - 1)):
        raise ValueError(f"{mult_field}={tuple(net.channel_mult)} downsamples "
                         f"{len(net.channel_mult) - 1} times, which data.resolution="
                         f"{d.resolution} does not allow")


def make_diffusion(flags, respacing: str = "", field: str = "score.flags") -> DiscreteDiffusion:
    """guided-diffusion's create_gaussian_diffusion from a flags section (its diffusion_steps,
    noise_schedule, learn_sigma, sigma_small, use_kl, predict_xstart, rescale_learned_sigmas),
    respaced by `respacing` ("" keeps every step)."""
    try:
        return diffusion_from_flags(_as_dict(flags), timestep_respacing=respacing)
    except (ValueError, KeyError) as err:
        raise ValueError(f"{field}: {err}") from err


def build_unet(flags, d, *, learn_sigma: bool | None = None, num_classes=None,
               field: str = "score.flags") -> UNetModel:
    """guided-diffusion's UNetModel from model-and-diffusion flags (`unet_from_flags`), with
    image_size, in/out channels (x2 with learned sigmas) and `num_classes` labels (None:
    unconditional) from the data. `learn_sigma`, when given, overrides the flag."""
    f = _from_data(_as_dict(flags), field, image_size=int(d.resolution))
    if learn_sigma is not None:
        f["learn_sigma"] = bool(learn_sigma)
    try:
        net = unet_from_flags(f)
    except ValueError as err:
        raise ValueError(f"{field}: {err}") from err
    net = net.clone(in_channels=int(d.channels),
                    out_channels=int(d.channels) * (2 if f.get("learn_sigma") else 1),
                    num_classes=num_classes)
    _check_net(net, d, f"{field}.num_channels", f"{field}.channel_mult")
    return net


def build_classifier(flags, d, field: str = "classifier.flags") -> EncoderUNetModel:
    """The noisy classifier: guided-diffusion's classifier from its flags (`classifier_from_flags`,
    integer model timesteps), data.num_classes outputs."""
    if d.num_classes < 2:
        raise ValueError(f"a classifier needs data.num_classes >= 2, got {d.num_classes}")
    f = _as_dict(flags)
    if f.get("condition"):
        raise ValueError(f"{field}.condition: the noisy classifier takes no labels")
    f = _from_data(f, field, image_size=int(d.resolution), in_channels=int(d.channels),
                   out_channels=int(d.num_classes))
    try:
        net = classifier_from_flags(f, dg_time=False)
    except ValueError as err:
        raise ValueError(f"{field}: {err}") from err
    _check_net(net, d, f"{field}.classifier_width", f"{field}.classifier_channel_mult")
    # attention (at the attention resolutions and in the middle block) has 64-channel heads
    attended = [int(net.model_channels * m) for i, m in enumerate(net.channel_mult)
                if 2 ** i in net.attention_resolutions or i == len(net.channel_mult) - 1]
    if any(c % net.num_head_channels for c in attended):
        raise ValueError(f"{field}.classifier_width={net.model_channels}: the attention blocks "
                         f"(channels {attended}) need multiples of {net.num_head_channels}, "
                         f"guided-diffusion's channels per head")
    return net


def score_num_classes(config):
    """Label-embedding size of the score UNet: None (unconditional), K, or K + 1 with the null
    label K when labels are dropped for classifier-free guidance."""
    s, d = config.score, config.data
    if not s.flags.class_cond:
        return None
    return d.num_classes + (1 if s.p_uncond > 0 else 0)
