"""guided-diffusion / DG state dicts <-> Flax parameter trees of `dg_jax.models.adm`.

The Flax modules are named so that a parameter path maps onto the PyTorch key by turning each
`_<digits>` of a module name into `.<digits>` and the leaf name into PyTorch's
(`kernel`/`scale`/`embedding` -> `weight`; `bias`, `positional_embedding` unchanged):
    ('input_blocks_1_0', 'in_layers_2', 'kernel')  <->  'input_blocks.1.0.in_layers.2.weight'
Tensors are converted to the NHWC layout: Conv2d (O, I, kh, kw) -> (kh, kw, I, O); 1x1 Conv1d
(O, I, 1) and Linear (O, I) -> Dense (I, O); AttentionPool2d's positional embedding (C, T) ->
(T, C). Every tensor of the checkpoint is used exactly once; a missing, extra or mis-shaped
tensor raises `CheckpointError` naming each offender and the file.
"""
from __future__ import annotations

import os
import re
from typing import Mapping, Optional

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.convert.matcher import match_state_dict
from dg_jax.convert.torch_reader import load_torch_state_dict
from dg_jax.models.adm import EncoderUNetModel, UNetModel
from dg_jax.models.adm_flags import (
    classifier_from_flags,
    encoder_from_kwargs,
    unet_from_flags,
    unet_from_kwargs,
)
from dg_jax.models.dg_discriminator import DGDiscriminator

_LEAF_TO_TORCH = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias",
                  "positional_embedding": "positional_embedding"}
_INDEX = re.compile(r"_(\d+)(?=_|$)")
# Dense layers that stand for guided-diffusion's 1x1 Conv1d: kernels (O, I, 1) in the file.
_CONV1D = ("qkv", "proj_out", "qkv_proj", "c_proj")


def torch_key(path: tuple[str, ...]) -> str:
    """PyTorch state-dict key of a Flax parameter path (see module docstring)."""
    *modules, leaf = path
    if leaf not in _LEAF_TO_TORCH:
        raise ValueError(f"no PyTorch name for Flax parameter {'/'.join(path)}")
    return ".".join([_INDEX.sub(r".\1", m) for m in modules] + [_LEAF_TO_TORCH[leaf]])


def torch_to_flax(array: np.ndarray, leaf: str) -> np.ndarray:
    """A PyTorch tensor in the layout of the Flax leaf `leaf` (float32)."""
    a = np.asarray(array)
    if leaf == "kernel":
        if a.ndim == 4:    # Conv2d (O, I, kh, kw) -> (kh, kw, I, O)
            a = a.transpose(2, 3, 1, 0)
        elif a.ndim == 3:  # Conv1d with kernel 1 (O, I, 1) -> Dense (I, O)
            if a.shape[-1] != 1:
                raise ValueError(f"Conv1d kernel size {a.shape[-1]} is not 1")
            a = a[:, :, 0].T
        elif a.ndim == 2:  # Linear (O, I) -> Dense (I, O)
            a = a.T
    elif leaf == "positional_embedding" and a.ndim == 2:  # (C, T) -> (T, C)
        a = a.T
    return np.ascontiguousarray(a, dtype=np.float32)


def _torch_ndim(path: tuple[str, ...], flax_ndim: int) -> int:
    """How many dimensions the PyTorch tensor of a Flax leaf has (Dense kernels of Conv1d: 3)."""
    if path[-1] == "kernel" and flax_ndim == 2 and len(path) > 1 and path[-2] in _CONV1D:
        return 3
    return flax_ndim


def torch_shape(path: tuple[str, ...], flax_shape) -> tuple[int, ...]:
    """The PyTorch shape of the Flax leaf at `path` of `flax_shape` (see `torch_to_flax`)."""
    shape = tuple(int(s) for s in flax_shape)
    leaf = path[-1]
    if leaf == "kernel" and len(shape) == 4:
        h, w, i, o = shape
        return (o, i, h, w)
    if leaf == "kernel" and len(shape) == 2:
        return shape[::-1] + (1,) * (_torch_ndim(path, 2) - 2)
    if leaf == "positional_embedding" and len(shape) == 2:
        return shape[::-1]
    return shape


def flax_to_torch(array, leaf: str, torch_ndim: int) -> np.ndarray:
    """Inverse of `torch_to_flax` (for writing official-format checkpoints); float32."""
    a = np.asarray(array, np.float32)
    if leaf == "kernel":
        if a.ndim == 4:
            a = a.transpose(3, 2, 0, 1)
        elif torch_ndim == 3:
            a = a.T[:, :, None]
        else:
            a = a.T
    elif leaf == "positional_embedding":
        a = a.T
    return np.ascontiguousarray(a)


def example_inputs(module) -> tuple:
    """Smallest inputs that build every parameter of an ADM module (batch 1, NHWC)."""
    x = jnp.zeros((1, module.image_size, module.image_size, module.in_channels), jnp.float32)
    t = jnp.zeros((1,), jnp.float32)
    y = jnp.zeros((1,), jnp.int32) if module.num_classes is not None else None
    return x, t, y


def param_shapes(module) -> dict:
    """The module's parameter tree as ShapeDtypeStructs (nothing is computed)."""
    variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), *example_inputs(module)))
    return variables["params"]


def state_dict_to_params(module, state_dict: Mapping[str, np.ndarray],
                         source: str = "state dict") -> dict:
    """Maps a guided-diffusion/DG state dict onto `module`'s Flax tree: returns {'params': tree}.

    Raises CheckpointError naming `source` and every missing, extra and mis-shaped tensor
    (`dg_jax.convert.matcher`; shapes in PyTorch's layout).
    """
    flat = traverse_util.flatten_dict(param_shapes(module))
    keys = {path: torch_key(path) for path in flat}
    expected = {keys[path]: torch_shape(path, spec.shape) for path, spec in flat.items()}
    found = match_state_dict(state_dict, expected, what=type(module).__name__, source=source)
    out = {path: jnp.asarray(torch_to_flax(found[keys[path]], path[-1])) for path in flat}
    return {"params": traverse_util.unflatten_dict(out)}


def params_to_state_dict(variables: Mapping) -> dict[str, np.ndarray]:
    """A Flax ADM tree ({'params': ...}) as a guided-diffusion state dict (float32, torch layout).

    Dense kernels that stand for 1x1 Conv1d layers (qkv, proj_out, qkv_proj, c_proj) become
    (O, I, 1), other Dense kernels Linear (O, I).
    """
    result = {}
    for path, value in traverse_util.flatten_dict(dict(variables["params"])).items():
        result[torch_key(path)] = flax_to_torch(value, path[-1], _torch_ndim(path, np.ndim(value)))
    return result


def _read(path: str | os.PathLike) -> dict[str, np.ndarray]:
    return load_torch_state_dict(path)


def load_adm_unet(path: str | os.PathLike, flags: Mapping,
                  state_dict: Optional[Mapping] = None) -> tuple[UNetModel, dict]:
    """guided-diffusion UNetModel from its model-and-diffusion flags and a torch.save state dict."""
    module = unet_from_flags(flags)
    sd = state_dict if state_dict is not None else _read(path)
    return module, state_dict_to_params(module, sd, str(path))


def load_adm_classifier(path: str | os.PathLike, flags: Mapping, *, dg_time: bool = True,
                        state_dict: Optional[Mapping] = None) -> tuple[EncoderUNetModel, dict]:
    """ADM classifier / DG head from DG's `create_classifier` flags and a state dict.

    dg_time=True: DG's convention (VP tau in [0, 1], x999 inside); False: integer timesteps.
    """
    module = classifier_from_flags(flags, dg_time=dg_time)
    sd = state_dict if state_dict is not None else _read(path)
    return module, state_dict_to_params(module, sd, str(path))


def load_unet_kwargs(path: str | os.PathLike, kwargs: Mapping) -> tuple[UNetModel, dict]:
    """UNetModel from the PyTorch constructor's arguments and a state dict."""
    module = unet_from_kwargs(kwargs)
    return module, state_dict_to_params(module, _read(path), str(path))


def load_encoder_kwargs(path: str | os.PathLike, kwargs: Mapping, *,
                        dg_time: bool = False) -> tuple[EncoderUNetModel, dict]:
    """EncoderUNetModel from the PyTorch constructor's arguments (attention resolutions as
    downsample factors) and a state dict; integer timesteps unless `dg_time`."""
    module = encoder_from_kwargs(kwargs, dg_time=dg_time)
    return module, state_dict_to_params(module, _read(path), str(path))


def load_dg_discriminator(classifier_path: str | os.PathLike, classifier_flags: Mapping,
                          head_path: Optional[str | os.PathLike], head_flags: Mapping
                          ) -> tuple[DGDiscriminator, dict]:
    """DG's `get_discriminator`: the ADM classifier and the head from their `create_classifier`
    flags (DG's names, e.g. the manifest's `classifier_arch` / `arch`) and torch.save state
    dicts; both take VP tau. head_path None gives a freshly initialised head (PRNGKey(0)).
    Returns (disc, {'classifier': {'params': ...}, 'head': {'params': ...}})."""
    classifier, c_params = load_adm_classifier(classifier_path, classifier_flags, dg_time=True)
    if head_path is None:
        disc = DGDiscriminator(classifier, classifier_from_flags(head_flags, dg_time=True))
        return disc, {"classifier": c_params, "head": disc.init_head(jax.random.PRNGKey(0))}
    head, h_params = load_adm_classifier(head_path, head_flags, dg_time=True)
    return DGDiscriminator(classifier, head), {"classifier": c_params, "head": h_params}
