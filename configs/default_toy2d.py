"""Defaults of DG's 2-D experiment (pipeline 'toy2d'; not a config itself: see toy2d.py), and its
smoke size: an 8-mode ring as the data, a deliberately different mixture whose exact score is
the "model", and an MLP discriminator trained to correct it.
"""
import math

import ml_collections

from configs.common import base_config


def _ring(n, radius, phase=0.0):
    return [[radius * math.cos(2 * math.pi * k / n + phase),
             radius * math.sin(2 * math.pi * k / n + phase)] for k in range(n)]


def get_default_config() -> ml_collections.ConfigDict:
    config = base_config("toy2d")
    # p_r: the data; p_g: a deliberately different mixture whose exact score is the "model".
    config.data = dict(
        real_means=_ring(8, 2.0),
        real_stds=0.15,
        real_weights=[0.26, 0.04, 0.2, 0.06, 0.16, 0.08, 0.14, 0.06],
        wrong_means=_ring(8, 2.2, phase=0.1),
        wrong_stds=0.25,
        wrong_weights=[0.125] * 8,
    )
    config.sampler = dict(name="heun", num_steps=24, sigma_min=0.002, sigma_max=80.0, rho=7.0,
                          S_churn=0.0, S_min=0.0, S_max=float("inf"), S_noise=1.0)
    config.generate = dict(num_samples=20000, batch_size=4000)
    config.disc = dict(
        process="vp", width=256, depth=4, time_embed_dim=64,
        time_sampling="importance", t_min=1e-5,
        optimizer="adam", learning_rate=1e-3, lr_schedule="cosine",
        batch_size=256,  # per class (real and fake)
        num_steps=3000, checkpoint_every=1000, log_every=250,
    )
    config.dg = dict(weight=1.0, time_min=0.0, time_max=1.0, clip_probability=False,
                     second_order=True)
    config.eval = dict(num_samples=8000, batch_size=4000, plot_sigmas=[2.0, 0.5, 0.1, 0.0],
                       plot_taus=[0.05, 0.3])
    return config


def apply_smoke(config) -> None:
    """Smoke size: a small discriminator for 40 steps, 8 sampler steps, 2k samples."""
    config.generate.update(num_samples=2048, batch_size=1024)
    config.disc.update(width=64, depth=2, batch_size=128, num_steps=40, checkpoint_every=20,
                       log_every=20)
    config.sampler.num_steps = 8
    config.eval.update(num_samples=1024, batch_size=512)
