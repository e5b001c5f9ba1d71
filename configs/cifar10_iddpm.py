"""Improved DDPM on CIFAR-10 (Nichol & Dhariwal 2021; openai/improved-diffusion's CIFAR-10 flags):

  --image_size 32 --num_channels 128 --num_res_blocks 3 --learn_sigma True --dropout 0.3
  --diffusion_steps 4000 --noise_schedule cosine --lr 1e-4 --batch_size 128  (EMA 0.9999)

i.e. the hybrid loss L_simple + lambda L_vlb with lambda = 0.001 (improved-diffusion's default
rescale_learned_sigmas=True: the sampled stop-gradient VLB term is scaled by T / 1000), with
uniform t and learned-range variance; the paper trains 500K steps.
The ':kl' variant trains L_vlb alone with importance sampling of t (use_kl, loss-second-moment),
the paper's best log-likelihood setting.

Data: CIFAR-10's 50,000 training images as an .npz (`arr_0` uint8 NHWC, e.g. DG's
true_data.npz layout); nothing is downloaded at run time.
  python -m launch.main --config=configs/cifar10_iddpm.py --workdir=/tmp/cifar10_iddpm \
      --config.data.path=cifar10_train.npz
  python -m launch.main --config=configs/cifar10_iddpm.py:kl --workdir=/tmp/cifar10_iddpm_kl \
      --config.data.path=cifar10_train.npz
Smoke (tiny network, random 8x8 data; :kl,smoke took 101 s in the test suite on 2026-11-30, 2 CPU cores shared with a second test worker):
--config=configs/cifar10_iddpm.py:smoke
(or :kl,smoke). Checkpoints (params, EMA, optimiser, the loss-history of importance sampling)
are in DIR/checkpoints/score and resume automatically.
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_guidance import apply_smoke, get_default_config

VARIANTS = ("kl", "smoke")


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.data.path = "cifar10_train.npz"
    config.score.flags.update(num_res_blocks=3, dropout=0.3, diffusion_steps=4000,
                              use_kl=arg.kl, rescale_learned_sigmas=True)
    config.score.schedule_sampler = "loss-second-moment" if arg.kl else "uniform"
    config.score.train.update(num_steps=500_000, log_every=500, checkpoint_every=10_000)
    if arg.smoke:
        apply_smoke(config)
    return config
