"""Defaults of the Diffusion-GAN configs (pipeline 'diffusion_gan'; not a config itself: see
digits_diffusion_gan.py, toy25_diffusion_gan.py, cifar10_diffusion_stylegan2.py), and their
smoke size.

`get_default_config()` is a vanilla GAN and a Diffusion-GAN (same networks, steps and seeds) on
scikit-learn's 8x8 digits (a DCGAN-style pair, lazy R1), with the official code's diffusion
(linear betas 1e-4 -> 2e-2, priority sampling of t, T adapted towards d_target 0.6, noise sigma
0.05) between T_min 5 and T_max 500.
"""
import ml_collections

from configs.common import base_config


def get_default_config() -> ml_collections.ConfigDict:
    config = base_config("diffusion_gan", experiment="digits", runs=("vanilla", "diffusion_gan"))
    config.data = dict(resolution=8, channels=1, synthetic=False, path="")
    config.model = dict(backbone="dcgan", z_dim=32, width=16, w_dim=128, mapping_layers=2)
    # Adam (b1, b2) for G and D, lazy R1 every r1_interval minibatches, EMA of G over ema_kimg
    config.train = dict(batch_size=64, num_steps=10000, g_lr=2e-3, d_lr=2e-3, b1=0.0, b2=0.99,
                        r1_gamma=0.1, r1_interval=16, ema_kimg=5.0, ema_rampup=0.05,
                        log_every=1000, checkpoint_every=2500)
    config.diffusion = dict(beta_start=1e-4, beta_end=2e-2, t_min=5, t_max=500, noise_std=0.05,
                            ts_dist="priority", priority_weights="t_minus_1", d_target=0.6,
                            ada_interval=4, ada_kimg=100.0)
    config.eval = dict(num_samples=2000, classifier_steps=600, snapshot_every=0)
    return config


def apply_smoke(config, *, num_steps: int, num_samples: int, model: dict,
                batch_size: int = 16, r1_interval: int = 4) -> None:
    """Smoke size: `num_steps` training steps (logged and checkpointed twice) of batch_size,
    the `model` widths, `num_samples` samples to evaluate."""
    config.model.update(model)
    config.train.update(batch_size=batch_size, num_steps=num_steps, log_every=num_steps // 2,
                        checkpoint_every=num_steps // 2, r1_interval=r1_interval)
    config.eval.num_samples = num_samples
