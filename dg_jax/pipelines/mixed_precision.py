"""The image DG pipeline's networks in another compute dtype (bfloat16 for speed).

`dg_images_models.build_score_model` / `build_discriminator` build float32 networks; these
functions return the same networks (same parameters, float32) computing in `dtype`:

    precond = score_model_in(precond, 'bfloat16')       # SongUNet / DhariwalUNet
    disc = discriminator_in(config, 'bfloat16')          # DG's ADM classifier + head

Activations, convolutions and matmuls run in `dtype` with float32 accumulation; normalisation,
softmax, the noise embedding, the preconditioning and the sampler state stay float32
(see dg_jax/models/precision.py). The small 'conv' discriminator has no compute dtype and stays
float32.
"""
from __future__ import annotations

import dataclasses

from dg_jax.models.precision import compute_dtype as check_dtype
from dg_jax.pipelines import dg_images_models as M


def score_model_in(precond, dtype: str, field: str = "compute_dtype"):
    """The EDM preconditioner with its U-Net computing in `dtype` (parameters unchanged)."""
    check_dtype(dtype, field)
    if not hasattr(precond, "model") or "compute_dtype" not in precond.model.__dataclass_fields__:
        raise ValueError(f"{field}={dtype!r}: the score model {type(precond).__name__} has no "
                         "compute dtype (EDM SongUNet/DhariwalUNet only)")
    return dataclasses.replace(precond, model=precond.model.clone(compute_dtype=dtype))


def discriminator_in(config, dtype: str, field: str = "compute_dtype") -> M.Discriminator:
    """config's discriminator (as `build_discriminator` makes it) computing in `dtype`; the
    'conv' kind is returned in float32 when dtype is 'float32' and refused otherwise."""
    check_dtype(dtype, field)
    return M.build_discriminator(config, compute_dtype=dtype)
