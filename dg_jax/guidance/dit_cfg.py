"""DiT's classifier-free guidance: `forward_with_cfg` and DiT-G++'s two-stage `forward_with_dg`.

The official DiT `models.py` guides with a scale s (`cfg_scale`; DG_imagenet's `LT_cfg` /
`ST_cfg`): guided = uncond + s (cond - uncond), which is `dg_jax.guidance.cfg`'s weight
w = s - 1 (the combination itself is `cfg.cfg_combine`); s = 1 is the conditional model.
`scale` may be a number, one per row, or a function of the model timestep t (B,), like the
weights of `cfg.py`; `two_stage_scale` is DG_imagenet's: LT_cfg while t[0] > branch_time
(strictly, the first row's t, as the official code reads it), ST_cfg from branch_time down.

DiT's quirk, kept by default: only the first THREE output channels are guided
("for exact reproducibility", the official comment says; the standard approach guides all eps
channels). `guided_channels=3` is the official rule; `guided_channels=None` guides every eps
channel (half the output with `learned_variance`, else all of it). The other channels are the
raw model outputs.

Two calling conventions share one implementation:
- rows (default; what a sampler calls): x, t, y of B rows with the conditional labels; the
  model runs once on 2B rows (cat(x, x), cat(t, t), cat(y, null)) and B rows come back: the
  guided channels, then the conditional evaluation's other channels (its eps channel 3 and
  its variance values, as `cfg.cfg_model_fn` keeps the conditional variance). These are exactly
  the first half of the official doubled output.
- `doubled=True` (the official `forward_with_cfg` / `forward_with_dg` call): x, t, y of
  N = 2B rows, y[B:] already the null label; only x[:B] is used, run as cat(x[:B], x[:B]) with
  the given t and y; N rows come back: the guided channels written to both halves, the other
  channels the raw per-row outputs (conditional rows, then null rows).

`t` is the original DDPM timestep (respaced samplers map their indices before the model call).
Samplers (`ddpm_sample(diffusion, dit_cfg_model_fn(...), ...)`) never know guidance is inside.
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp

from dg_jax.broadcast import per_example
from dg_jax.guidance.cfg import cfg_combine, null_labels_like

Scale = Union[float, jnp.ndarray, Callable]
DIT_GUIDED_CHANNELS = 3  # the official models.py guides model_out[:, :3]


def two_stage_scale(LT_cfg: float, ST_cfg: float, branch_time: float) -> Callable:
    """DG_imagenet's schedule as a scale function of t: LT_cfg if t[0] > branch_time else
    ST_cfg, for every row (the official rule reads the first row's t only)."""

    def scale(t):
        t = jnp.asarray(t).reshape(-1)
        s = jnp.where(t[0] > branch_time, LT_cfg, ST_cfg)
        return jnp.broadcast_to(s, t.shape)

    return scale


def _num_guided(guided_channels: Optional[int], channels: int, learned_variance: bool) -> int:
    if guided_channels is None:
        if learned_variance and channels % 2:
            raise ValueError(f"learned_variance: the model output has an odd number of "
                             f"channels ({channels}), not [eps, variance]")
        return channels // 2 if learned_variance else channels
    if not 0 < int(guided_channels) <= channels:
        raise ValueError(f"guided_channels={guided_channels}: the model output has {channels} "
                         "channels")
    return int(guided_channels)


def _guided_pair(model_fn, x2, t2, y2, scale: Scale, guided_channels, learned_variance, axis):
    """One model call on the 2B rows (cond rows, then null rows): (guided head (B, ...), cond
    output, null output), the head being the first channels combined with scale s."""
    out = model_fn(x2, t2, y2)
    b = out.shape[0] // 2
    cond, uncond = out[:b], out[b:]
    g = _num_guided(guided_channels, out.shape[axis], learned_variance)
    head_c = jax.lax.slice_in_dim(cond, 0, g, axis=axis)
    head_u = jax.lax.slice_in_dim(uncond, 0, g, axis=axis)
    s = scale(t2[:b]) if callable(scale) else scale
    s = per_example(s, b, cond.dtype)
    return cfg_combine(head_c, head_u, s - 1), cond, uncond, g


def _with_rest(head, full, g: int, axis: int):
    rest = jax.lax.slice_in_dim(full, g, full.shape[axis], axis=axis)
    return jnp.concatenate([head, rest], axis=axis)


def forward_with_cfg(model_fn: Callable, x, t, y, cfg_scale: Scale, *,
                     null_label: Optional[int] = None,
                     guided_channels: Optional[int] = DIT_GUIDED_CHANNELS,
                     learned_variance: bool = True, doubled: bool = False,
                     channel_axis: int = -1):
    """DiT's `forward_with_cfg` with `model_fn(x, t, y)` (e.g. a bound `DiT`): rows mode (B rows,
    conditional labels, `null_label` needed) or the official `doubled` batch (module docstring).
    `cfg_scale`: a number, one per row, or a function of t."""
    x, t, y = jnp.asarray(x), jnp.asarray(t), jnp.asarray(y)
    axis = channel_axis % x.ndim
    n = x.shape[0]
    t = jnp.broadcast_to(t.reshape(-1) if t.ndim else t, (n,))
    if doubled:
        if n % 2:
            raise ValueError(f"doubled=True needs an even batch (cond rows, then null rows), got "
                             f"{n} rows")
        half = x[: n // 2]
        head, cond, uncond, g = _guided_pair(model_fn, jnp.concatenate([half, half]), t, y,
                                             cfg_scale, guided_channels, learned_variance, axis)
        return jnp.concatenate([_with_rest(head, cond, g, axis),
                                _with_rest(head, uncond, g, axis)])
    if null_label is None:
        raise ValueError("forward_with_cfg on B rows needs null_label (the DiT's num_classes); "
                         "or pass the official doubled batch with doubled=True")
    y_null = null_labels_like(y, null_label)
    head, cond, _, g = _guided_pair(model_fn, jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                                    jnp.concatenate([y, y_null]), cfg_scale, guided_channels,
                                    learned_variance, axis)
    return _with_rest(head, cond, g, axis)


def forward_with_dg(model_fn: Callable, x, t, y, LT_cfg: float, ST_cfg: float,
                    branch_time: float, **kwargs):
    """DG_imagenet's `forward_with_dg`: `forward_with_cfg` with scale LT_cfg while
    t[0] > branch_time, else ST_cfg (`two_stage_scale`); keyword arguments as forward_with_cfg
    (`doubled=True` for the official N = 2B batch)."""
    return forward_with_cfg(model_fn, x, t, y, two_stage_scale(LT_cfg, ST_cfg, branch_time),
                            **kwargs)


def dit_cfg_model_fn(model_fn: Callable, cfg_scale: Scale, null_label: int, *,
                     guided_channels: Optional[int] = DIT_GUIDED_CHANNELS,
                     learned_variance: bool = True, channel_axis: int = -1) -> Callable:
    """model_fn(x, t, y) -> DiT-guided output on the same B rows, for `ddpm_sample` /
    `ddim_sample`; `cfg_scale=two_stage_scale(LT_cfg, ST_cfg, branch_time)` is DiT-G++'s."""

    def guided(x, t, y):
        if y is None:
            raise ValueError("classifier-free guidance needs class labels y")
        return forward_with_cfg(model_fn, x, t, y, cfg_scale, null_label=null_label,
                                guided_channels=guided_channels,
                                learned_variance=learned_variance, channel_axis=channel_axis)

    return guided
