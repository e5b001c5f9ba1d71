"""Diffusion-GAN vs a vanilla GAN on scikit-learn's 1,797 8x8 digits (DCGAN-style pair, lazy R1).

Run (both GANs and the digits classifier; under 20 minutes on 2 CPU cores):
  python -m launch.main --config=configs/digits_diffusion_gan.py --workdir=/tmp/dg_digits
Smoke variant (71 s in the test suite on 2026-11-30, 2 CPU cores shared with a second test worker):
  python -m launch.main --config=configs/digits_diffusion_gan.py:smoke --workdir=/tmp/dg_digits_smoke
Backbone choice: --config.model.backbone=stylegan2 (compact StyleGAN2 pair).

Writes DIR/results.json with fd_vanilla and fd_diffusion_gan (Fréchet distance between 2,000
EMA-generator samples and all 1,797 digits on the penultimate features of
dg_jax.eval.digits_classifier) and each run's final_T / final_p; DIR/samples_<run>.png.

Measured (seed 0, 2 shared CPU cores, about 5 minutes in all): fd_vanilla 1.0054,
fd_diffusion_gan 1.0268, final_T 5 (r_d stayed below d_target = 0.6, so p stayed ~0),
classifier train accuracy 0.9928.
"""
import ml_collections

from configs.common import parse_arg
from configs.default_diffusion_gan import apply_smoke, get_default_config

VARIANTS = ("smoke",)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.diffusion.ada_kimg = 20.0
    if arg.smoke:
        apply_smoke(config, num_steps=20, num_samples=200, model=dict(width=8, z_dim=8))
        config.diffusion.ada_kimg = 0.1
        config.eval.classifier_steps = 20
    return config
