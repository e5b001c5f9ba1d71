"""diffusers `AutoencoderKL` folders (the SD VAE) -> `dg_jax.models.sd_vae.AutoencoderKL` + params.

A diffusers `save_pretrained` folder, as downloaded from e.g. stabilityai/sd-vae-ft-mse, holds
`config.json` (the constructor arguments) and `diffusion_pytorch_model.safetensors` (or, in
older uploads, `diffusion_pytorch_model.bin`, a torch.save state dict). Neither is executed and
torch is not needed: safetensors files are read with the `safetensors` package's NumPy API, .bin
files with the restricted unpickler of `dg_jax.convert.torch_reader`.

Tensor names map onto the Flax tree as for guided-diffusion (`dg_jax.convert.adm.torch_key`):
`encoder/down_blocks_0/resnets_1/conv1/kernel` <-> `encoder.down_blocks.0.resnets.1.conv1.weight`,
convolutions OIHW -> HWIO, linear layers (out, in) -> (in, out). Checkpoints written before
diffusers renamed its attention (`AttentionBlock`) name the mid-block attention's projections
`query` / `key` / `value` / `proj_attn`; these are read as `to_q` / `to_k` / `to_v` /
`to_out.0`, as diffusers' own loader does. Every tensor is used exactly once: a missing, extra or
mis-shaped tensor raises a `CheckpointError` naming it and the file
(`dg_jax.convert.matcher`).
"""
from __future__ import annotations

import os
import pathlib
import re
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
from flax import traverse_util

from dg_jax.convert.adm import flax_to_torch, torch_key, torch_shape, torch_to_flax
from dg_jax.convert.matcher import match_state_dict
from dg_jax.convert.torch_reader import load_torch_state_dict
from dg_jax.errors import CheckpointError, read_json
from dg_jax.models.sd_vae import AutoencoderKL, autoencoder_kl_from_config

CONFIG_NAME = "config.json"
WEIGHTS_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
_LEGACY_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_LEGACY_KEY = re.compile(r"^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$")
_HINT = ("check that config.json is the one saved with these weights (block_out_channels, "
         "layers_per_block, latent_channels, in/out_channels, mid_block_add_attention, "
         "use_quant_conv, use_post_quant_conv)")


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a .safetensors file as NumPy arrays; CheckpointError naming the file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        return dict(safetensors.numpy.load_file(str(path)))
    except Exception as err:  # noqa: BLE001 - a damaged or unsupported file, reported as such
        raise CheckpointError(f"{path} cannot be read as safetensors ({type(err).__name__}: "
                              f"{err}); bfloat16 tensors are not readable by NumPy: save the "
                              "weights in float32 or float16, or download the file again") from None


def weights_file(folder: str | os.PathLike) -> pathlib.Path:
    """The folder's diffusers weights file (safetensors preferred over .bin)."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder: give a diffusers AutoencoderKL folder "
                              f"({CONFIG_NAME} + {WEIGHTS_NAMES[0]}), e.g. a download of "
                              "stabilityai/sd-vae-ft-mse")
    for name in WEIGHTS_NAMES:
        if (folder / name).is_file():
            return folder / name
    others = sorted(p.name for p in folder.iterdir()
                    if p.suffix in (".safetensors", ".bin", ".pt", ".ckpt"))
    found = f"; it holds {others}" if others else ""
    raise CheckpointError(f"{folder} has no {' or '.join(WEIGHTS_NAMES)}{found}: download the "
                          "VAE's weights into it (a variant such as *.fp16.safetensors must be "
                          f"renamed to {WEIGHTS_NAMES[0]})")


def read_vae_config(folder: str | os.PathLike) -> dict:
    """The folder's config.json (a JsonFileError naming it when missing or malformed)."""
    config = read_json(pathlib.Path(folder) / CONFIG_NAME, "diffusers AutoencoderKL config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{pathlib.Path(folder) / CONFIG_NAME} must hold a JSON object")
    return config


def read_vae_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A diffusers weights file: .safetensors (NumPy API) or a torch.save .bin (safe reader)."""
    path = pathlib.Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    return load_torch_state_dict(path)


def rename_legacy_attention(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`<...>.attentions.N.{query,key,value,proj_attn}.{weight,bias}` -> `to_q/to_k/to_v/to_out.0`
    (diffusers' `_fix_state_dict_keys_on_load`). A legacy name whose new name is also present is
    kept, so the matcher reports it as unexpected."""
    out = dict(state_dict)
    for name in list(state_dict):
        m = _LEGACY_KEY.match(name)
        if m is None:
            continue
        new = f"{m.group(1)}.{_LEGACY_ATTENTION[m.group(2)]}.{m.group(3)}"
        if new not in out:
            out[new] = out.pop(name)
    return out


def param_shapes(vae: AutoencoderKL) -> dict:
    """The VAE's parameter tree as ShapeDtypeStructs (nothing is computed)."""
    images = vae.example_images()
    return jax.eval_shape(lambda: vae.init(jax.random.PRNGKey(0), images))["params"]


def state_dict_to_params(vae: AutoencoderKL, state_dict: Mapping[str, np.ndarray],
                         source: str = "state dict") -> dict:
    """Maps a diffusers AutoencoderKL state dict (legacy attention names accepted) onto the
    VAE's Flax tree: returns {'params': tree} in float32. Raises StateDictMismatch (a
    CheckpointError) naming `source` and every missing, extra and mis-shaped tensor."""
    flat = traverse_util.flatten_dict(param_shapes(vae))
    keys = {path: torch_key(path) for path in flat}
    expected = {keys[path]: torch_shape(path, spec.shape) for path, spec in flat.items()}
    found = match_state_dict(rename_legacy_attention(state_dict), expected,
                             what="AutoencoderKL", source=source, hint=_HINT)
    out = {path: jnp.asarray(torch_to_flax(found[keys[path]], path[-1])) for path in flat}
    return {"params": traverse_util.unflatten_dict(out)}


def params_to_state_dict(variables: Mapping) -> dict[str, np.ndarray]:
    """A Flax VAE tree ({'params': ...}) as a diffusers state dict (float32, torch layout,
    current attention names)."""
    return {torch_key(path): flax_to_torch(value, path[-1], np.ndim(value))
            for path, value in traverse_util.flatten_dict(dict(variables["params"])).items()}


def load_sd_vae(folder: str | os.PathLike, *, config: Optional[Mapping] = None,
                compute_dtype: Optional[str] = None, attention_impl: str = "auto"
                ) -> tuple[AutoencoderKL, dict]:
    """Reads a diffusers AutoencoderKL folder; returns `(vae, {'params': ...})`.

    `config` (the constructor arguments) overrides the folder's config.json, which is then not
    needed; `compute_dtype` / `attention_impl` as for `AutoencoderKL`."""
    folder = pathlib.Path(folder)
    weights = weights_file(folder)
    where = "the given AutoencoderKL config"
    if config is None:
        config, where = read_vae_config(folder), str(folder / CONFIG_NAME)
    vae = autoencoder_kl_from_config(config, compute_dtype=compute_dtype,
                                     attention_impl=attention_impl, where=where)
    return vae, state_dict_to_params(vae, read_vae_state_dict(weights), str(weights))
