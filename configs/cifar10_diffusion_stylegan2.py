"""Diffusion-StyleGAN2 on CIFAR-10 with the paper's settings: d_target 0.6, ada_kimg 100,
T in [5, 1000] with priority sampling, batch 64, noise sigma 0.05, linear betas 1e-4 -> 2e-2,
lazy R1 (gamma 0.01, every 16 minibatches), EMA of G. A compact StyleGAN2 pair (see
dg_jax/gan/models_stylegan2.py), so sample quality is not the paper's; this is for a GPU.

Run (needs CIFAR-10's python batches, https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz):
  python -m launch.main --config=configs/cifar10_diffusion_stylegan2.py \
      --workdir=/tmp/dg_cifar10 --config.data.path=/data/cifar-10-batches-py
Only the Diffusion-GAN run (the vanilla baseline too: --config.runs="('vanilla','diffusion_gan')").
Smoke variant (synthetic 32x32 images; 58 s in the test suite on 2026-11-30, 2 CPU cores shared with a second test worker):
  python -m launch.main --config=configs/cifar10_diffusion_stylegan2.py:smoke --workdir=/tmp/dg_c10s

Writes DIR/results.json (final_T, final_p per run), DIR/samples_<run>.png and metrics.jsonl
with T, p, r_d and D's real/fake outputs under DIR/<run>/.
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_diffusion_gan import apply_smoke, get_default_config

VARIANTS = ("smoke",)


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.update(experiment="cifar10", runs=("diffusion_gan",))
    config.data.update(resolution=32, channels=3)
    config.model.update(backbone="stylegan2", z_dim=256, width=256, w_dim=256)
    config.train.update(num_steps=781250, g_lr=2.5e-3, d_lr=2.5e-3, r1_gamma=0.01,
                        ema_kimg=500.0, checkpoint_every=10000)
    config.diffusion.t_max = 1000
    config.eval.update(num_samples=100, classifier_steps=0)
    if arg.smoke:
        config.data.update(synthetic=True, resolution=8)
        apply_smoke(config, num_steps=8, num_samples=16, model=dict(z_dim=8, width=8, w_dim=8))
    return config
