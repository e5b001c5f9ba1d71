"""Builds ADM networks from guided-diffusion's / DG's own flags and constructor arguments.

- `unet_from_flags`: guided-diffusion `script_util.create_model` from the model-and-diffusion
  flag set (`num_channels`, `channel_mult` as a string, attention resolutions as image sizes,
  `learn_sigma` -> 6 output channels, `class_cond` -> 1000 classes); diffusion flags are ignored.
- `classifier_from_flags`: DG's `create_classifier` (a superset of guided-diffusion's): channel
  multipliers from `image_size`, 64 channels per head, attention resolutions as image sizes,
  `out_channels`, `in_channels`, `condition` (1000-entry label embedding) and
  `classifier_channel_mult` ("1,2,2"; "" = the multipliers above; DG_imagenet names it
  `channel_mult`, accepted too). `dg_time=True` makes
  the network take DG's continuous VP tau (multiplied by 999 inside); `dg_time=False` is
  guided-diffusion's integer-timestep classifier.
- `unet_from_kwargs` / `encoder_from_kwargs`: the PyTorch constructors' own arguments
  (attention resolutions as downsample factors).
Unknown flags raise, naming them, so a typo never silently falls back to a default.
"""
from __future__ import annotations

from typing import Mapping

from dg_jax.models.adm import EncoderUNetModel, UNetModel

NUM_CLASSES = 1000
DG_TIME_SCALE = 999.0

CHANNEL_MULT_BY_SIZE = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
    32: (1, 2, 4),
    16: (1, 2),
    8: (1,),
}

# create_model's defaults (guided_diffusion/script_util.py)
UNET_FLAG_DEFAULTS = dict(
    channel_mult="", learn_sigma=False, class_cond=False, use_checkpoint=False,
    attention_resolutions="16", num_heads=1, num_head_channels=-1, num_heads_upsample=-1,
    use_scale_shift_norm=False, dropout=0.0, resblock_updown=False, use_fp16=False,
    use_new_attention_order=False, compute_dtype=None, attention_impl="auto",
)
UNET_REQUIRED_FLAGS = ("image_size", "num_channels", "num_res_blocks")
DIFFUSION_FLAGS = ("diffusion_steps", "noise_schedule", "timestep_respacing", "use_kl",
                   "predict_xstart", "rescale_timesteps", "rescale_learned_sigmas", "sigma_small")

CLASSIFIER_FLAG_DEFAULTS = dict(out_channels=NUM_CLASSES, in_channels=3, condition=False,
                                classifier_channel_mult="", channel_mult="", compute_dtype=None,
                                attention_impl="auto")
CLASSIFIER_REQUIRED_FLAGS = (
    "image_size", "classifier_use_fp16", "classifier_width", "classifier_depth",
    "classifier_attention_resolutions", "classifier_use_scale_shift_norm",
    "classifier_resblock_updown", "classifier_pool",
)

_UNET_KWARGS = set(UNetModel.__dataclass_fields__) - {"parent", "name"}
_ENCODER_KWARGS = set(EncoderUNetModel.__dataclass_fields__) - {"parent", "name"}
_TORCH_ONLY_KWARGS = {"dims", "use_checkpoint"}


def _check_keys(flags: Mapping, allowed, required, what: str) -> None:
    unknown = sorted(set(flags) - set(allowed) - set(required))
    if unknown:
        known = sorted(set(allowed) | set(required))
        raise ValueError(f"unknown {what} flag(s) {unknown}; known: {known}")
    missing = [k for k in required if k not in flags]
    if missing:
        raise ValueError(f"missing {what} flag(s) {missing}")


def _resolutions_to_ds(image_size: int, resolutions, field: str) -> tuple[int, ...]:
    """'32,16,8' (image sizes) -> downsample factors image_size // res, as script_util does."""
    text = resolutions if isinstance(resolutions, str) else ",".join(str(r) for r in resolutions)
    try:
        return tuple(image_size // int(res) for res in text.split(",") if res.strip())
    except ValueError as err:
        raise ValueError(f"{field}={resolutions!r} is not a comma-separated list of ints") from err


def _parse_channel_mult(value, field: str) -> tuple:
    """"1,2,2" or [1, 2, 2] as a tuple of ints; "" / [] -> () (the size's default)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        return tuple(int(p) for p in parts if str(p).strip())
    except ValueError as err:
        raise ValueError(f"{field}={value!r} is not a comma-separated list of ints") from err


def _channel_mult(image_size: int, field: str) -> tuple:
    if image_size not in CHANNEL_MULT_BY_SIZE:
        raise ValueError(f"unsupported image size {image_size} for default channel multipliers "
                         f"({field}); supported: {sorted(CHANNEL_MULT_BY_SIZE)}")
    return CHANNEL_MULT_BY_SIZE[image_size]


def unet_from_flags(flags: Mapping) -> UNetModel:
    """guided-diffusion `create_model(**flags)` (model-and-diffusion flag names)."""
    _check_keys(flags, set(UNET_FLAG_DEFAULTS) | set(DIFFUSION_FLAGS), UNET_REQUIRED_FLAGS,
                "UNet")
    f = {**UNET_FLAG_DEFAULTS, **flags}
    size = int(f["image_size"])
    if f["channel_mult"] in ("", None):
        if size not in (64, 128, 256, 512):
            raise ValueError(f"unsupported image size {size} without an explicit channel_mult")
        channel_mult = _channel_mult(size, "channel_mult")
    elif isinstance(f["channel_mult"], str):
        channel_mult = tuple(int(m) for m in f["channel_mult"].split(","))
    else:
        channel_mult = tuple(f["channel_mult"])
    return UNetModel(
        image_size=size,
        in_channels=3,
        model_channels=int(f["num_channels"]),
        out_channels=6 if f["learn_sigma"] else 3,
        num_res_blocks=int(f["num_res_blocks"]),
        attention_resolutions=_resolutions_to_ds(size, f["attention_resolutions"],
                                                 "attention_resolutions"),
        dropout=float(f["dropout"]),
        channel_mult=channel_mult,
        num_classes=NUM_CLASSES if f["class_cond"] else None,
        use_fp16=bool(f["use_fp16"]),
        num_heads=int(f["num_heads"]),
        num_head_channels=int(f["num_head_channels"]),
        num_heads_upsample=int(f["num_heads_upsample"]),
        use_scale_shift_norm=bool(f["use_scale_shift_norm"]),
        resblock_updown=bool(f["resblock_updown"]),
        use_new_attention_order=bool(f["use_new_attention_order"]),
        compute_dtype=f["compute_dtype"] or None,
        attention_impl=str(f["attention_impl"]),
    )


def classifier_from_flags(flags: Mapping, *, dg_time: bool = True) -> EncoderUNetModel:
    """DG's `create_classifier(**flags)` (guided-diffusion's classifier flags plus `out_channels`,
    `in_channels`, `condition`). Diffusion flags are ignored."""
    _check_keys(flags, set(CLASSIFIER_FLAG_DEFAULTS) | set(DIFFUSION_FLAGS),
                CLASSIFIER_REQUIRED_FLAGS, "classifier")
    f = {**CLASSIFIER_FLAG_DEFAULTS, **flags}
    size = int(f["image_size"])
    # DG_imagenet's fixtures and configs name the multipliers `channel_mult`; guided-diffusion's
    # classifier flag is `classifier_channel_mult`. Either is explicit; both at once is ambiguous.
    mult_named = _parse_channel_mult(f["channel_mult"], "channel_mult")
    mult_classifier = _parse_channel_mult(f["classifier_channel_mult"], "classifier_channel_mult")
    if mult_named and mult_classifier and mult_named != mult_classifier:
        raise ValueError(f"classifier flags channel_mult={f['channel_mult']!r} and "
                         f"classifier_channel_mult={f['classifier_channel_mult']!r} disagree; "
                         "set one of them")
    return EncoderUNetModel(
        image_size=size,
        in_channels=int(f["in_channels"]),
        model_channels=int(f["classifier_width"]),
        out_channels=int(f["out_channels"]),
        num_res_blocks=int(f["classifier_depth"]),
        attention_resolutions=_resolutions_to_ds(size, f["classifier_attention_resolutions"],
                                                 "classifier_attention_resolutions"),
        channel_mult=mult_named or mult_classifier or _channel_mult(size, "image_size"),
        use_fp16=bool(f["classifier_use_fp16"]),
        num_head_channels=64,
        use_scale_shift_norm=bool(f["classifier_use_scale_shift_norm"]),
        resblock_updown=bool(f["classifier_resblock_updown"]),
        pool=str(f["classifier_pool"]),
        num_classes=NUM_CLASSES if f["condition"] else None,
        time_scale=DG_TIME_SCALE if dg_time else 1.0,
        compute_dtype=f["compute_dtype"] or None,
        attention_impl=str(f["attention_impl"]),
    )


def _from_kwargs(cls, allowed: set, kwargs: Mapping, extra: Mapping):
    _check_keys(kwargs, allowed | _TORCH_ONLY_KWARGS, (), cls.__name__)
    if int(kwargs.get("dims", 2)) != 2:
        raise ValueError(f"{cls.__name__}: only dims=2 is supported")
    k = {key: v for key, v in kwargs.items() if key not in _TORCH_ONLY_KWARGS}
    for key in ("attention_resolutions", "channel_mult"):
        if key in k:
            k[key] = tuple(k[key])
    return cls(**k, **extra)


def unet_from_kwargs(kwargs: Mapping) -> UNetModel:
    """UNetModel(**kwargs) with the PyTorch constructor's arguments (`dims`, `use_checkpoint`
    accepted and ignored)."""
    return _from_kwargs(UNetModel, _UNET_KWARGS, kwargs, {})


def encoder_from_kwargs(kwargs: Mapping, *, dg_time: bool = False) -> EncoderUNetModel:
    """EncoderUNetModel(**kwargs) with the PyTorch constructor's arguments; DG's `condition` /
    `num_class` map to `num_classes`. dg_time: take VP tau (x999 inside) instead of integer t."""
    k = dict(kwargs)
    condition = bool(k.pop("condition", False))
    num_class = int(k.pop("num_class", NUM_CLASSES))
    if condition:
        k["num_classes"] = num_class
    if "time_scale" in k:
        raise ValueError("time_scale is not a constructor argument; use dg_time")
    return _from_kwargs(EncoderUNetModel, _ENCODER_KWARGS - {"time_scale"}, k,
                        {"time_scale": DG_TIME_SCALE if dg_time else 1.0})
