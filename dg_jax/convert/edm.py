"""EDM network pickles -> dg_jax preconditioned denoisers (Flax params + a pure denoise function).

Torch names map onto the Flax tree by name: `model.<module path>.<param>`, with the `enc`/`dec`
ModuleDict entries flattened to `enc_<key>`/`dec_<key>` (see dg_jax/models/edm_unets.py).
Convolution weights go OIHW -> HWIO, linear weights (out, in) -> (in, out). The constant
`resample_filter` buffers are checked against the architecture's filter; iDDPM's `u` buffer is
checked against its formula and then used as stored. Every tensor is used exactly once: a
missing, extra or mis-shaped tensor raises a `CheckpointError` naming it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from dg_jax.convert.matcher import match_state_dict
from dg_jax.convert.torch_reader import CheckpointError, load_edm_pickle
from dg_jax.models.edm_layers import resample_filter_2d
from dg_jax.models.edm_precond import edm_precond_from_kwargs, iddpm_u_table, iDDPMPrecond

_PREFIX = "model."


def torch_name(path: tuple[str, ...]) -> str:
    """Flax path ('enc_32x32_conv', 'weight') -> torch name 'model.enc.32x32_conv.weight'."""
    head, rest = path[0], list(path[1:])
    for group in ("enc_", "dec_"):
        if head.startswith(group):
            return _PREFIX + ".".join([group[:-1], head[len(group):]] + rest)
    return _PREFIX + ".".join([head] + rest)


def to_flax_layout(array: np.ndarray) -> np.ndarray:
    """OIHW -> HWIO for 4-D tensors, (out, in) -> (in, out) for 2-D, unchanged otherwise."""
    if array.ndim == 4:
        return np.transpose(array, (2, 3, 1, 0))
    if array.ndim == 2:
        return array.T
    return array


def torch_shape(flax_shape) -> tuple[int, ...]:
    """The shape in the pickle of a Flax leaf of `flax_shape` (the inverse of `to_flax_layout`)."""
    shape = tuple(int(s) for s in flax_shape)
    if len(shape) == 4:
        h, w, i, o = shape
        return (o, i, h, w)
    return shape[::-1] if len(shape) == 2 else shape


def edm_variable_shapes(precond) -> dict:
    """Abstract `init` variables ({'params': ..., 'buffers': ...}) of the preconditioner's U-Net."""
    model = precond.model
    res, ch = precond.img_resolution, precond.img_channels
    x = jnp.zeros((1, res, res, ch), jnp.float32)
    noise = jnp.zeros((1,), jnp.float32)
    labels = jnp.zeros((1, model.label_dim), jnp.float32) if model.label_dim else None
    augment = jnp.zeros((1, model.augment_dim), jnp.float32) if model.augment_dim else None
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, noise, labels,
                                             augment_labels=augment))


def map_edm_state_dict(state: dict[str, np.ndarray], precond, source: str = "checkpoint"):
    """Maps a torch-style EDM state dict onto the preconditioner's Flax params.

    Returns `(params, precond)`; the preconditioner comes back with iDDPM's `u` replaced by the
    stored table. Raises CheckpointError naming every missing, extra or mis-shaped tensor
    (`dg_jax.convert.matcher`), then any constant buffer that differs from the architecture's."""
    variables = edm_variable_shapes(precond)
    params = traverse_util.flatten_dict(variables["params"])
    buffers = traverse_util.flatten_dict(variables.get("buffers", {}))
    filt = resample_filter_2d(getattr(precond.model, "resample_filter", (1, 1)))[None, None]
    expected = {torch_name(path): torch_shape(spec.shape) for path, spec in params.items()}
    filters = [torch_name(path) for path in buffers]
    expected.update({name: filt.shape for name in filters})
    u_ref = None
    if isinstance(precond, iDDPMPrecond):
        u_ref = iddpm_u_table(precond.M, precond.C_1, precond.C_2)
        expected["u"] = u_ref.shape
    what = f"{type(precond).__name__}/{type(precond.model).__name__}"
    found = match_state_dict(state, expected, what=what, source=source,
                             hint="the pickle's own constructor arguments do not build these "
                                  "tensors: the file was altered or holds an unsupported variant")
    wrong = [f"{name} differs from the filter the architecture implies" for name in filters
             if not np.array_equal(found[name].astype(np.float32), filt)]
    if u_ref is not None:
        u = np.asarray(found["u"], np.float32)
        if not np.allclose(u, u_ref, rtol=1e-4, atol=1e-6):
            wrong.append("u differs from the iDDPM table for M, C_1, C_2")
        else:
            precond = dataclasses.replace(precond, u=u)
    if wrong:
        raise CheckpointError(f"{source}: state dict does not match {what}: " + "; ".join(wrong)
                              + "; the file was made for another architecture or altered")
    params = traverse_util.unflatten_dict(
        {path: jnp.asarray(np.asarray(to_flax_layout(found[torch_name(path)]), np.float32))
         for path in params})
    return params, precond


def load_edm_denoiser(path: str | os.PathLike) -> tuple[Callable, dict, dict]:
    """Reads an EDM network pickle; returns `(denoise_fn, params, arch)`.

    `denoise_fn(params, x_nhwc, sigma, class_labels)` is the preconditioner (it also carries
    `round_sigma`, `sigma_min`, `sigma_max`); `arch` holds `class_name`, `init_kwargs` (EDM's,
    model_type included), `sigma_min` and `sigma_max`."""
    net = load_edm_pickle(path)
    try:
        precond = edm_precond_from_kwargs(net.class_name, net.init_kwargs)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: {err}") from err
    params, precond = map_edm_state_dict(net.state, precond, source=str(path))
    arch = {"class_name": net.class_name, "init_kwargs": dict(net.init_kwargs),
            "sigma_min": float(precond.sigma_min), "sigma_max": float(precond.sigma_max)}
    return precond, params, arch
