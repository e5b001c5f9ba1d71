"""pytorch-fid's FID Inception weights -> the Flax variables of `FIDInceptionV3`.

The weights are pytorch-fid's port of TensorFlow's `inception-2015-12-05` graph, published as a
GitHub release asset (the file users download once; nothing is fetched at run time):

    https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

It is a `torch.save` state_dict read here without torch (`load_torch_state_dict`). Names map
one-to-one onto the Flax tree: `X.conv.weight` (OIHW) -> params `X/conv/kernel` (HWIO),
`X.bn.weight/bias` -> params `X/bn/scale|bias`, `X.bn.running_mean/var` -> batch_stats
`X/bn/mean|var`, `fc.weight` (1008, 2048) -> params `fc/kernel` (transposed), `fc.bias`.
`*.num_batches_tracked` is ignored. Every other tensor must be used exactly once; tensors of any
floating dtype (the fixtures store float16) are cast to float32.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from dg_jax.convert.matcher import match_state_dict
from dg_jax.convert.torch_reader import CheckpointError, load_torch_state_dict
from dg_jax.models.inception import FIDInceptionV3, abstract_variables

FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")

# Flax leaf name -> (torch suffix, transform from the torch array to the Flax layout).
_CONV_KERNEL = ("weight", lambda w: np.transpose(w, (2, 3, 1, 0)))   # OIHW -> HWIO
_LEAF_RULES = {
    ("params", "conv", "kernel"): _CONV_KERNEL,
    ("params", "bn", "scale"): ("weight", lambda w: w),
    ("params", "bn", "bias"): ("bias", lambda w: w),
    ("batch_stats", "bn", "mean"): ("running_mean", lambda w: w),
    ("batch_stats", "bn", "var"): ("running_var", lambda w: w),
    ("params", "fc", "kernel"): ("weight", lambda w: w.T),
    ("params", "fc", "bias"): ("bias", lambda w: w),
}


def _torch_name_and_rule(collection: str, path: tuple[str, ...]):
    """Flax (collection, path) -> (torch key, transform)."""
    rule = _LEAF_RULES.get((collection, path[-2], path[-1]))
    if rule is None:
        raise CheckpointError(f"no torch mapping for Flax leaf {collection}/{'/'.join(path)}")
    suffix, transform = rule
    return ".".join(path[:-1] + (suffix,)), transform


def inception_variables_from_state_dict(state_dict: dict[str, np.ndarray], *,
                                        source: str = "<state dict>",
                                        model: FIDInceptionV3 | None = None) -> dict:
    """Map a pytorch-fid Inception state_dict onto `{'params': ..., 'batch_stats': ...}` (float32).

    Raises CheckpointError naming `source` and every missing, mis-shaped or unused tensor.
    """
    return map_state_dict(abstract_variables(model), state_dict, source=source)


def map_state_dict(template: dict, state_dict: dict[str, np.ndarray], *,
                   source: str = "<state dict>") -> dict:
    """Fill a Flax variable `template` (shapes, e.g. from `jax.eval_shape(module.init, ...)`) of
    this file's modules (BasicConv2d's conv/bn, fc) from torch-named tensors, each used once
    (checked by `dg_jax.convert.matcher`; `*.num_batches_tracked` is ignored).
    """
    rules, expected = {}, {}
    for collection, tree in template.items():
        for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            path = tuple(k.key for k in p)
            key, transform = _torch_name_and_rule(collection, path)
            rules[collection, path] = key, transform
            expected[key] = _torch_shape(collection, path, leaf.shape)
    found = match_state_dict(state_dict, expected, what="the FID Inception", source=source,
                             ignore=lambda k: k.endswith("num_batches_tracked"),
                             hint=f"use pytorch-fid's FID weights ({FID_WEIGHTS_URL})")

    def convert(collection, path):
        key, transform = rules[collection, path]
        return np.ascontiguousarray(transform(found[key].astype(np.float32)))

    return {collection: jax.tree_util.tree_map_with_path(
        lambda p, _, c=collection: convert(c, tuple(k.key for k in p)), tree)
        for collection, tree in template.items()}


def _torch_shape(collection: str, path: tuple[str, ...], flax_shape) -> tuple[int, ...]:
    """The torch shape that maps onto a Flax leaf of `flax_shape` (for error messages)."""
    rule = (collection, path[-2], path[-1])
    if rule == ("params", "conv", "kernel"):
        h, w, i, o = flax_shape
        return (o, i, h, w)
    if rule == ("params", "fc", "kernel"):
        return tuple(flax_shape[::-1])
    return tuple(flax_shape)


def load_fid_inception(path: str | os.PathLike, model: FIDInceptionV3 | None = None) -> dict:
    """Read pytorch-fid's `pt_inception-2015-12-05-*.pth` (see FID_WEIGHTS_URL) -> Flax variables.

    `path` is the user's local copy; this function never downloads anything.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"FID Inception weights not found at {path!r}; download them once from "
            f"{FID_WEIGHTS_URL} and pass the local path")
    return inception_variables_from_state_dict(load_torch_state_dict(path), source=path,
                                               model=model)
