"""Official DiT checkpoints (facebookresearch/DiT, DG_imagenet) <-> Flax trees of `dg_jax.models.dit`.

Two file layouts are read, both `torch.save` archives read without torch
(`dg_jax.convert.torch_reader`):

- the released weights (`DiT-XL-2-256x256.pt`, `DiT-XL-2-512x512.pt`): the state dict itself;
- `train.py`'s checkpoints (`0400000.pt`): `{"model", "ema", "opt", "args"}`. The EMA weights
  are taken by default (as the official `download.find_model` does), `entry="model"` takes the
  raw weights; the optimiser state and the argparse `args` are not used.

Nothing is inferred from the file: the architecture comes from the DiT constructor arguments
(`arch`, e.g. a manifest's `arch`) or a published configuration's name (`DIT_CONFIGS`), and the
file must hold exactly the tensors that network has (`dg_jax.convert.matcher`; a missing, extra
or mis-shaped tensor raises `StateDictMismatch` naming each one and the file).

Names: a Flax path maps onto the PyTorch key as in `dg_jax.convert.adm` (`_<digits>` ->
`.<digits>`, kernel / embedding -> weight), `pos_embed` (1, T, D) stays itself and is loaded,
never recomputed. Layouts: the patch embedding Conv2d (O, I, p, p) -> (p, p, I, O), Linear
(O, I) -> Dense (I, O); biases, the label table and `pos_embed` are unchanged.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional, Union

import flax.traverse_util as traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from dg_jax.convert import adm
from dg_jax.convert.matcher import match_state_dict
from dg_jax.convert.torch_reader import load_torch_object
from dg_jax.errors import CheckpointError
from dg_jax.models.dit import DIT_CONFIGS, DiT, dit_from_name

ENTRIES = ("ema", "model")  # train.py checkpoint entries holding a DiT state dict
Arch = Union[str, Mapping[str, Any]]


def dit_fields() -> tuple[str, ...]:
    """The DiT constructor's fields (the official ones plus compute_dtype, attention_impl)."""
    return tuple(f.name for f in dataclasses.fields(DiT) if f.name not in ("parent", "name"))


def dit_from_arch(arch: Arch) -> DiT:
    """A DiT from its constructor arguments, or a `DIT_CONFIGS` name ('DiT-XL/2'), or a mapping
    whose `model` entry names one (as DiT's `--model` flag) with the other arguments beside it.
    Unknown argument names raise a ValueError naming them."""
    if isinstance(arch, str):
        return dit_from_name(arch)
    kwargs = dict(arch)
    name = kwargs.pop("model", None)
    unknown = sorted(set(kwargs) - set(dit_fields()))
    if unknown:
        raise ValueError(f"unknown DiT argument(s) {unknown} in the architecture; the DiT "
                         f"constructor takes {list(dit_fields())} (and 'model', one of "
                         f"{list(DIT_CONFIGS)})")
    return dit_from_name(name, **kwargs) if name is not None else DiT(**kwargs)


def dit_arch(module: DiT) -> dict:
    """Every constructor argument of `module`, explicit (what arch.json records)."""
    return {name: getattr(module, name) for name in dit_fields()}


def torch_key(path: tuple[str, ...]) -> str:
    """PyTorch state-dict key of a Flax DiT parameter path."""
    if path == ("pos_embed",):
        return "pos_embed"
    return adm.torch_key(path)


def torch_shape(path: tuple[str, ...], flax_shape) -> tuple[int, ...]:
    """The PyTorch shape of the Flax leaf at `path`: Conv2d (O, I, kh, kw), Linear (O, I)."""
    shape = tuple(int(s) for s in flax_shape)
    if path[-1] == "kernel" and len(shape) == 4:
        h, w, i, o = shape
        return (o, i, h, w)
    if path[-1] == "kernel" and len(shape) == 2:
        return shape[::-1]
    return shape


def example_inputs(module: DiT) -> tuple:
    """Smallest inputs that build every parameter (batch 1, NHWC)."""
    x = jnp.zeros((1, module.input_size, module.input_size, module.in_channels), jnp.float32)
    return x, jnp.zeros((1,), jnp.int32), jnp.zeros((1,), jnp.int32)


def param_shapes(module: DiT) -> dict:
    """The module's parameter tree as ShapeDtypeStructs (nothing is allocated)."""
    return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                              *example_inputs(module)))["params"]


def expected_state_dict(module: DiT) -> dict[str, tuple[int, ...]]:
    """{PyTorch key: PyTorch shape} of every tensor the official DiT of this config holds."""
    flat = traverse_util.flatten_dict(param_shapes(module))
    return {torch_key(path): torch_shape(path, spec.shape) for path, spec in flat.items()}


def state_dict_to_params(module: DiT, state_dict: Mapping[str, np.ndarray],
                         source: str = "state dict") -> dict:
    """Maps an official DiT state dict onto `module`'s Flax tree: returns {'params': tree}.
    Raises `StateDictMismatch` naming `source` and every missing, extra or mis-shaped tensor."""
    flat = traverse_util.flatten_dict(param_shapes(module))
    keys = {path: torch_key(path) for path in flat}
    expected = {keys[path]: torch_shape(path, spec.shape) for path, spec in flat.items()}
    found = match_state_dict(state_dict, expected, what=f"DiT {module.depth} blocks, hidden "
                             f"{module.hidden_size}, patch {module.patch_size}", source=source,
                             hint="check that this is a DiT checkpoint and that the architecture "
                                  "arguments (or the DiT-*/* name) are the ones it was trained with")
    out = {path: jnp.asarray(adm.torch_to_flax(found[keys[path]], path[-1])) for path in flat}
    return {"params": traverse_util.unflatten_dict(out)}


def params_to_state_dict(variables: Mapping) -> dict[str, np.ndarray]:
    """A Flax DiT tree ({'params': ...}) as the official state dict (float32, torch layout)."""
    return {torch_key(path): adm.flax_to_torch(value, path[-1], np.ndim(value))
            for path, value in traverse_util.flatten_dict(dict(variables["params"])).items()}


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())


def read_dit_state_dict(path: str | os.PathLike, entry: str = "ema") -> dict[str, np.ndarray]:
    """The DiT state dict in a released file (the state dict itself) or a `train.py` checkpoint
    (its `entry`: 'ema', the default, or 'model')."""
    if entry not in ENTRIES:
        raise ValueError(f"entry={entry!r}: a DiT training checkpoint holds the weights under "
                         f"{list(ENTRIES)}")
    obj = load_torch_object(path)
    if _is_state_dict(obj):
        return dict(obj)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a DiT state dict or a "
                              "train.py checkpoint dict")
    if entry not in obj:
        raise CheckpointError(f"{path}: a dict without the {entry!r} entry (it has "
                              f"{sorted(map(str, obj))}); a DiT train.py checkpoint has "
                              "'model', 'ema', 'opt' and 'args', a released file is the state "
                              "dict itself")
    if not _is_state_dict(obj[entry]):
        raise CheckpointError(f"{path}: entry {entry!r} is a {type(obj[entry]).__name__}, not a "
                              "state dict of tensors")
    return dict(obj[entry])


def load_dit(path: str | os.PathLike, arch: Arch, *, entry: str = "ema",
             state_dict: Optional[Mapping] = None) -> tuple[DiT, dict]:
    """(DiT, {'params': ...}) from an official checkpoint and the architecture (`dit_from_arch`);
    `entry` picks a train.py checkpoint's 'ema' (default) or 'model' weights."""
    module = dit_from_arch(arch)
    sd = state_dict if state_dict is not None else read_dit_state_dict(path, entry)
    return module, state_dict_to_params(module, sd, str(path))
