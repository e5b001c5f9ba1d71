"""Class-conditional ImageNet 64x64 ADM trained for classifier-free guidance, and its noisy
classifier for classifier guidance (Dhariwal & Nichol 2021; Ho & Salimans 2022).

Score model: guided-diffusion's ImageNet-64 flags
  --attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --dropout 0.1
  --image_size 64 --learn_sigma True --noise_schedule cosine --num_channels 192
  --num_head_channels 64 --num_res_blocks 3 --resblock_updown True
  --use_new_attention_order True --use_scale_shift_norm True
trained with the hybrid loss, lr 3e-4, batch 2048, EMA 0.9999 (540K steps in ADM), plus
classifier-free guidance's label dropout p_uncond = 0.1 (null label = class 1000). Runs in
float32 here (ADM used fp16 with loss scaling).
Noisy classifier (guided-diffusion classifier_train.py, 64x64):
  --classifier_attention_resolutions 32,16,8 --classifier_depth 4 --classifier_width 128
  --classifier_pool attention --classifier_resblock_updown True
  --classifier_use_scale_shift_norm True   --batch_size 256 --lr 3e-4 --weight_decay 0.05
  (300K iterations).
Sampling: dg_jax.guidance.cfg.cfg_model_fn(model_fn, w, null_label=1000, learned_variance=True)
with dg_jax.samplers.ddpm.ddpm_sample / ddim_sample (CFG paper sweeps w in 0.1 .. 4), or
classifier_guidance_cond_fn(classifier, scale) as cond_fn (ADM's 64x64 scale 1.0).

Data: ImageNet 64x64 as an .npz (`arr_0` uint8 NHWC, `arr_1` labels); nothing is downloaded.
  python -m launch.main --config=configs/imagenet64_adm_cfg.py --workdir=/tmp/in64_cfg \
      --config.data.path=imagenet64_train.npz
Smoke (tiny networks, random 8x8 data; 127 s in the test suite on 2026-11-30, 2 CPU cores shared with a second test worker):
--config=configs/imagenet64_adm_cfg.py:smoke
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_guidance import apply_smoke, get_default_config

VARIANTS = ("smoke",)


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.stages = ("score", "classifier")
    config.data.update(path="imagenet64_train.npz", resolution=64, num_classes=1000)
    config.score.p_uncond = 0.1
    config.score.flags.update(num_channels=192, num_res_blocks=3, channel_mult="1,2,3,4",
                              attention_resolutions="32,16,8", num_heads=1, num_head_channels=64,
                              dropout=0.1, class_cond=True, resblock_updown=True,
                              use_new_attention_order=True)
    config.score.train.update(num_steps=540_000, batch_size=2048, learning_rate=3e-4,
                              log_every=500, checkpoint_every=10_000)
    config.classifier.flags.classifier_depth = 4  # 64x64: channel_mult 1,2,3,4 by image size
    config.classifier.train.update(num_steps=300_000, log_every=500, checkpoint_every=10_000)
    if arg.smoke:
        apply_smoke(config)
        config.data.num_classes = 10
    return config
