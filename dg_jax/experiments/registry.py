"""Which pipeline a config runs: `config.pipeline` -> "module:function" (imported lazily)."""
import importlib

PIPELINES = {
    "toy2d": "dg_jax.experiments.toy2d.pipeline:run",
    "diffusion_gan": "dg_jax.experiments.diffusion_gan.pipeline:run",
    "dg_images": "dg_jax.experiments.dg_images.pipeline:run",
    "guidance_train": "dg_jax.experiments.guidance.pipeline:run",
    "dit_dg": "dg_jax.experiments.dit_dg.pipeline:run",
}


def get_pipeline(name: str):
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r} (field 'pipeline'); "
                         f"choose one of {sorted(PIPELINES)}")
    module, fn = PIPELINES[name].split(":")
    return getattr(importlib.import_module(module), fn)
