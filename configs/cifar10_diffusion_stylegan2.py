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

from configs.variants import parse_variants

VARIANTS = ("smoke",)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.pipeline = "diffusion_gan"
    config.experiment = "cifar10"
    config.seed = 0
    config.tensorboard = False
    config.runs = ("diffusion_gan",)
    config.data = dict(resolution=32, channels=3, synthetic=False, path="")
    config.model = dict(backbone="stylegan2", z_dim=256, width=256, w_dim=256, mapping_layers=2)
    config.train = dict(batch_size=64, num_steps=781250, g_lr=2.5e-3, d_lr=2.5e-3, b1=0.0,
                        b2=0.99, r1_gamma=0.01, r1_interval=16, ema_kimg=500.0,
                        ema_rampup=0.05, log_every=1000, checkpoint_every=10000)
    config.diffusion = dict(beta_start=1e-4, beta_end=2e-2, t_min=5, t_max=1000, noise_std=0.05,
                            ts_dist="priority", priority_weights="t_minus_1", d_target=0.6,
                            ada_interval=4, ada_kimg=100.0)
    config.eval = dict(num_samples=100, classifier_steps=0, snapshot_every=0)

    if "smoke" in parse_variants(arg, VARIANTS, __file__):
        config.data.synthetic = True
        config.data.resolution = 8
        config.model.z_dim = 8
        config.model.width = 8
        config.model.w_dim = 8
        config.train.batch_size = 16
        config.train.num_steps = 8
        config.train.log_every = 4
        config.train.checkpoint_every = 4
        config.train.r1_interval = 4
        config.eval.num_samples = 16
    return ml_collections.ConfigDict(config)
