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

from configs.variants import parse_variants

VARIANTS = ("smoke",)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.pipeline = "diffusion_gan"
    config.experiment = "digits"
    config.seed = 0
    config.tensorboard = False
    config.runs = ("vanilla", "diffusion_gan")
    config.data = dict(resolution=8, channels=1, synthetic=False, path="")
    config.model = dict(backbone="dcgan", z_dim=32, width=16, w_dim=128, mapping_layers=2)
    config.train = dict(batch_size=64, num_steps=10000, g_lr=2e-3, d_lr=2e-3, b1=0.0, b2=0.99,
                        r1_gamma=0.1, r1_interval=16, ema_kimg=5.0, ema_rampup=0.05,
                        log_every=1000, checkpoint_every=2500)
    config.diffusion = dict(beta_start=1e-4, beta_end=2e-2, t_min=5, t_max=500, noise_std=0.05,
                            ts_dist="priority", priority_weights="t_minus_1", d_target=0.6,
                            ada_interval=4, ada_kimg=20.0)
    config.eval = dict(num_samples=2000, classifier_steps=600, snapshot_every=0)

    if "smoke" in parse_variants(arg, VARIANTS, __file__):
        config.model.width = 8
        config.model.z_dim = 8
        config.train.batch_size = 16
        config.train.num_steps = 20
        config.train.log_every = 10
        config.train.checkpoint_every = 10
        config.train.r1_interval = 4
        config.diffusion.ada_kimg = 0.1
        config.eval.num_samples = 200
        config.eval.classifier_steps = 20
    return ml_collections.ConfigDict(config)
