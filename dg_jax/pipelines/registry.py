"""Which pipeline a config runs: `config.pipeline` -> "module:function" (imported lazily)."""
import importlib

PIPELINES = {
    "toy2d": "dg_jax.pipelines.toy2d:run",
    "diffusion_gan": "dg_jax.pipelines.diffusion_gan:run",
    "dg_images": "dg_jax.pipelines.dg_images:run",
    "guidance_train": "dg_jax.pipelines.guidance_train:run",
}


def get_pipeline(name: str):
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r} (field 'pipeline'); "
                         f"choose one of {sorted(PIPELINES)}")
    module, fn = PIPELINES[name].split(":")
    return getattr(importlib.import_module(module), fn)
