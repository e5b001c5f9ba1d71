"""EDM training on CIFAR-10 (Karras et al. 2022, NVlabs/edm train.py, Table 7 'ours' DDPM++):

  torchrun train.py --data=cifar10-32x32.zip --cond=0|1 --arch=ddpmpp  (precond edm)
  batch 512, Adam lr 10e-4 (betas 0.9/0.999, eps 1e-8) with a 10 Mimg linear ramp,
  EMA half-life 0.5 Mimg with ramp-up ratio 0.05, dropout 0.13, duration 200 Mimg
  (= 390,625 steps), P_mean -1.2, P_std 1.2, sigma_data 0.5.
Not reproduced: EDM's geometric augmentation pipeline (augment_p 0.12); augment_dim is 0 here.
':cond' is the class-conditional model (label_dim 10).

Data: CIFAR-10's 50,000 training images as an .npz (`arr_0` uint8 NHWC); the EMA parameters
end up in DIR/checkpoints/score.
  python -m launch.main --config=configs/cifar10_edm_train.py --workdir=/tmp/cifar10_edm \
      --config.data.path=cifar10_train.npz
Class-conditional with 10% of the labels dropped, for classifier-free guidance (see
dg_jax.guidance.cfg.cfg_denoiser):
  python -m launch.main --config=configs/cifar10_edm_train.py:cond --workdir=/tmp/cifar10_edm_cond \
      --config.data.path=cifar10_train.npz --config.score.edm.init_kwargs.label_dropout=0.1
Smoke (tiny network, random 8x8 data; :cond,smoke took 111 s in the test suite on 2026-11-30, 2 CPU cores shared with a second test worker):
--config=configs/cifar10_edm_train.py:smoke or :cond,smoke.
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_guidance import apply_smoke, get_default_config

VARIANTS = ("cond", "smoke")


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.data.path = "cifar10_train.npz"
    config.score.family = "edm"
    config.score.flags.class_cond = arg.cond
    config.score.edm.init_kwargs = dict(
        img_resolution=32, img_channels=3, label_dim=10 if arg.cond else 0, sigma_data=0.5,
        model_type="SongUNet", embedding_type="positional", encoder_type="standard",
        decoder_type="standard", channel_mult_noise=1, resample_filter=[1, 1],
        model_channels=128, channel_mult=[2, 2, 2], num_blocks=4, attn_resolutions=[16],
        dropout=0.13, label_dropout=0.0)
    config.score.train.update(num_steps=390_625, batch_size=512, learning_rate=10e-4,
                              ema_decay=0.0, log_every=500, checkpoint_every=10_000)
    if arg.smoke:
        apply_smoke(config)
        config.score.edm.lr_rampup_kimg = 0.01
    return config
