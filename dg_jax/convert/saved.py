"""Converted checkpoints: an orbax parameter tree plus a JSON architecture record.

    DIR/arch.json   {"kind": ..., the flags or constructor arguments the network is built from}
    DIR/params/     orbax checkpoint of the Flax variables

`convert_checkpoint` reads an official checkpoint (EDM pickle, guided-diffusion / DG .pt,
pytorch-fid .pth) once; `load_converted` rebuilds the network from arch.json and restores the
parameters, so samplers and trainers never touch the PyTorch files again.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
from typing import Any, Mapping, Optional

import numpy as np
import orbax.checkpoint as ocp

from dg_jax.convert.adm import load_adm_classifier, load_adm_unet, load_dg_discriminator
from dg_jax.convert.dit import dit_arch, dit_from_arch, load_dit
from dg_jax.convert.edm import load_edm_denoiser
from dg_jax.convert.inception import load_fid_inception
from dg_jax.convert.sd_vae import load_sd_vae, read_vae_config
from dg_jax.errors import CheckpointError, ConfigError, read_json
from dg_jax.integrity import verify_folder, write_folder_digest
from dg_jax.models.adm_flags import classifier_from_flags, unet_from_flags
from dg_jax.models.dg_discriminator import DGDiscriminator
from dg_jax.models.edm_precond import edm_precond_from_kwargs
from dg_jax.models.inception import FIDInceptionV3
from dg_jax.models.sd_vae import autoencoder_kl_from_config

KINDS = ("edm", "adm_unet", "adm_classifier", "dg_discriminator", "fid_inception", "dit", "sd_vae")
_NEEDS_FLAGS = ("adm_unet", "adm_classifier", "dg_discriminator", "dit")  # official files lack their arch


@dataclasses.dataclass
class Converted:
    kind: str
    arch: dict
    model: Any    # EDM: the preconditioner (callable denoiser); ADM/Inception: the Flax module;
    params: Any   # dg_discriminator: a DGDiscriminator


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray, tuple)):
        return list(value.tolist() if isinstance(value, np.ndarray) else value)
    raise TypeError(f"cannot record {type(value).__name__} in arch.json")


def convert_checkpoint(kind: str, inputs: Mapping[str, str], flags: Optional[Mapping] = None,
                       head_flags: Optional[Mapping] = None, dg_time: bool = True,
                       dit_entry: str = "ema") -> Converted:
    """Reads an official checkpoint into a `Converted` (not yet saved).

    kind 'edm': inputs['checkpoint'] (EDM pickle). 'adm_unet': checkpoint + guided-diffusion
    model flags. 'adm_classifier': checkpoint + DG/guided `classifier_*` flags (`dg_time`: VP tau
    x999, else integer t). 'dg_discriminator': inputs['classifier'], inputs['checkpoint'] (head)
    + flags (classifier) and head_flags. 'fid_inception': checkpoint (pytorch-fid .pth).
    'sd_vae': checkpoint = a diffusers AutoencoderKL folder (config.json +
    diffusion_pytorch_model.safetensors or .bin; its config is recorded in arch.json).
    'dit': checkpoint (a released DiT .pt or a train.py checkpoint, whose `dit_entry` 'ema' or
    'model' is read) + the DiT constructor arguments as flags (or {"model": "DiT-XL/2", ...}).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r} (flag --kind); choose one of {list(KINDS)}")
    if kind in _NEEDS_FLAGS and not flags:
        raise ValueError(f"kind {kind!r} needs the architecture flags (--flags)")
    if kind == "dg_discriminator" and not head_flags:
        raise ValueError("kind 'dg_discriminator' needs the head's flags (--head_flags)")
    if kind == "edm":
        model, params, arch = load_edm_denoiser(inputs["checkpoint"])
        arch = {"kind": kind, "class_name": arch["class_name"], "init_kwargs": arch["init_kwargs"]}
        if getattr(model, "u", None) is not None and arch["class_name"] == "iDDPMPrecond":
            arch["u"] = np.asarray(model.u, np.float32).tolist()
        return Converted(kind, arch, model, params)
    if kind == "adm_unet":
        model, params = load_adm_unet(inputs["checkpoint"], flags)
        return Converted(kind, {"kind": kind, "flags": dict(flags)}, model, params)
    if kind == "adm_classifier":
        model, params = load_adm_classifier(inputs["checkpoint"], flags, dg_time=dg_time)
        return Converted(kind, {"kind": kind, "flags": dict(flags), "dg_time": dg_time},
                         model, params)
    if kind == "dg_discriminator":
        disc, params = load_dg_discriminator(inputs["classifier"], flags, inputs.get("checkpoint"),
                                             head_flags)
        arch = {"kind": kind, "classifier_flags": dict(flags), "head_flags": dict(head_flags)}
        return Converted(kind, arch, disc, params)
    if kind == "dit":
        model, params = load_dit(inputs["checkpoint"], flags, entry=dit_entry)
        return Converted(kind, {"kind": kind, "arch": dit_arch(model), "entry": dit_entry},
                         model, params)
    if kind == "sd_vae":
        vae, params = load_sd_vae(inputs["checkpoint"])
        config = read_vae_config(inputs["checkpoint"])  # recorded whole, as diffusers saved it
        return Converted(kind, {"kind": kind, "config": config}, vae, params)
    return Converted(kind, {"kind": kind}, FIDInceptionV3(), load_fid_inception(inputs["checkpoint"]))


def build_model(arch: Mapping):
    """The network (without parameters) that arch.json describes."""
    kind = arch.get("kind")
    if kind == "edm":
        model = edm_precond_from_kwargs(arch["class_name"], dict(arch["init_kwargs"]))
        if "u" in arch:
            model = dataclasses.replace(model, u=np.asarray(arch["u"], np.float32))
        return model
    if kind == "adm_unet":
        return unet_from_flags(arch["flags"])
    if kind == "adm_classifier":
        return classifier_from_flags(arch["flags"], dg_time=arch.get("dg_time", True))
    if kind == "dg_discriminator":
        return DGDiscriminator(classifier_from_flags(arch["classifier_flags"], dg_time=True),
                               classifier_from_flags(arch["head_flags"], dg_time=True))
    if kind == "fid_inception":
        return FIDInceptionV3()
    if kind == "dit":
        return dit_from_arch(arch["arch"])
    if kind == "sd_vae":
        return autoencoder_kl_from_config(arch["config"], where="arch.json config")
    raise ValueError(f"arch.json names unknown kind {kind!r}; known: {list(KINDS)}")


def save_converted(converted: Converted, outdir: str | os.PathLike) -> pathlib.Path:
    """Writes DIR/arch.json and DIR/params atomically (a temporary folder renamed at the end)."""
    outdir = pathlib.Path(outdir).absolute()
    if (outdir / "arch.json").exists():
        raise FileExistsError(f"{outdir} already holds a converted checkpoint; choose a new --output")
    tmp = outdir.with_name(outdir.name + ".tmp-convert")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "arch.json").write_text(json.dumps(converted.arch, indent=2, default=_json_default))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp / "params", converted.params)
    checkpointer.wait_until_finished()
    write_folder_digest(tmp / "params")
    if outdir.exists():
        outdir.rmdir()  # only an empty folder can be here (arch.json was checked above)
    tmp.rename(outdir)
    return outdir


def is_converted(path: str | os.PathLike) -> bool:
    return (pathlib.Path(path) / "arch.json").is_file()


def load_converted(directory: str | os.PathLike) -> Converted:
    """Rebuilds the network from DIR/arch.json and restores DIR/params (checked against the
    digest written with it)."""
    directory = pathlib.Path(directory).absolute()
    arch_path = directory / "arch.json"
    if not arch_path.is_file():
        raise CheckpointError(f"{directory} is not a converted checkpoint: no arch.json "
                              "(make one with `python -m launch.convert`)")
    arch = read_json(arch_path, "converted checkpoint architecture")
    model = build_model(arch)
    problem = verify_folder(directory / "params")
    if problem is not None:
        raise CheckpointError(f"converted checkpoint {directory} cannot be trusted: {problem}; "
                              "convert the original file again")
    params = ocp.StandardCheckpointer().restore(directory / "params")
    return Converted(arch["kind"], arch, model, params)


# arch.json entries that older conversions did not write, and the value they meant.
_ARCH_DEFAULTS = {"dg_time": True}
# launch.convert flags that produce an arch.json entry (for the advice in errors).
_CONVERT_FLAGS = {("dg_time", False): "--integer_time"}


def _convert_advice(kind: str, require: Mapping[str, Any]) -> str:
    extra = "".join(f" {_CONVERT_FLAGS[item]}" for item in require.items()
                    if item in _CONVERT_FLAGS)
    return f"convert the official file with `python -m launch.convert --kind={kind}{extra}`"


def load_weights(path: str | os.PathLike, kind: str, *, field: str, flags: Optional[Mapping] = None,
                 head_flags: Optional[Mapping] = None, classifier: Optional[str] = None,
                 dg_time: bool = True, require: Optional[Mapping[str, Any]] = None) -> Converted:
    """The network of `kind` from either a converted folder (`launch.convert` output) or the
    official file itself (converted in memory; `flags` / `head_flags` / `classifier` as for
    `convert_checkpoint`). `require` lists arch.json entries the network must have, e.g.
    `{"dg_time": False}` for a classifier converted with `--integer_time` (an official file is
    converted with them).

    Errors name `field`, the config field or flag that gave the path: a `ConfigError` when the
    path holds a network of another kind, lacks a `require`d entry, or is an official file
    whose architecture flags are not given; a `CheckpointError` when it cannot be read."""
    require = dict(require or {})
    if not path:
        raise CheckpointError(f"{field} is empty: give a {kind} checkpoint (an official file or "
                              "a `python -m launch.convert` output folder)")
    p = pathlib.Path(path)
    if is_converted(p):
        conv = load_converted(p)
    elif kind == "sd_vae" and p.is_dir():  # the official format is a diffusers folder
        conv = convert_checkpoint(kind, {"checkpoint": str(p)})
    elif p.is_dir():
        raise CheckpointError(f"{field}={path} is a folder without arch.json: not a converted "
                              "checkpoint (make one with `python -m launch.convert`)")
    elif not p.is_file():
        raise CheckpointError(f"{field}={path} not found")
    else:
        needed = {"flags": flags} if kind in _NEEDS_FLAGS else {}
        if kind == "dg_discriminator":
            needed["head_flags"] = head_flags
        absent = [name for name, value in needed.items() if not value]
        if absent:
            raise ConfigError(f"{field}={path} is an official {kind} file, which does not "
                              f"record its architecture, and no {' or '.join(absent)} came with "
                              f"it: {_convert_advice(kind, require)} (with --"
                              f"{' and --'.join(absent)}) and set {field} to its output folder")
        inputs = {"checkpoint": str(p)}
        if classifier:
            inputs["classifier"] = str(classifier)
        conv = convert_checkpoint(kind, inputs, flags, head_flags,
                                  dg_time=require.get("dg_time", dg_time))
    if conv.kind != kind:
        raise ConfigError(f"{field}={path} holds a {conv.kind!r} network; a {kind!r} one is "
                          f"needed here ({_convert_advice(kind, require)})")
    for key, value in require.items():
        found = conv.arch.get(key, _ARCH_DEFAULTS.get(key))
        if found != value:
            raise ConfigError(f"{field}={path} is a {kind} network with {key}={found!r}; "
                              f"{key}={value!r} is needed here ({_convert_advice(kind, require)})")
    return conv
