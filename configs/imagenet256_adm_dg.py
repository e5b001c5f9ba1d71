"""ADM-G++ on ImageNet 256x256 (DG paper, Table 3): DG + classifier guidance on guided-diffusion's
conditional ADM, FID 4.59 -> 3.18 (DDPM, 250 steps).

Files: 256x256_diffusion.pt and 256x256_classifier.pt (guided-diffusion), DG's discriminator
head for ImageNet 256 (DG_imagenet), ImageNet real data as .npz (or TFDS `imagenet2012` with
data.source='npz' replaced by a TFDS export), VIRTUAL_imagenet256_labeled.npz statistics.

Commands:
  python -m launch.convert --kind=adm_unet --checkpoint=256x256_diffusion.pt \
      --flags='{"image_size": 256, "num_channels": 256, "num_res_blocks": 2, "attention_resolutions": "32,16,8", "num_head_channels": 64, "learn_sigma": true, "class_cond": true, "resblock_updown": true, "use_scale_shift_norm": true, "diffusion_steps": 1000, "noise_schedule": "linear"}' \
      --output=ckpt/adm256
  python -m launch.convert --kind=adm_classifier --integer_time --checkpoint=256x256_classifier.pt \
      --flags='{"image_size": 256, "classifier_use_fp16": false, "classifier_width": 128, "classifier_depth": 2, "classifier_attention_resolutions": "32,16,8", "classifier_use_scale_shift_norm": true, "classifier_resblock_updown": true, "classifier_pool": "attention", "out_channels": 1000}' \
      --output=ckpt/adm256_classifier
  python -m launch.main --config=configs/imagenet256_adm_dg.py --workdir=/tmp/dg_in256 \
      --config.data.path=imagenet256.npz --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth
DDIM-G++: --config.sampler.respacing=ddim25. Smoke (106 s on 2 idle CPU cores, 1 CPU device, measured 2026-11-30):
--config=configs/imagenet256_adm_dg.py:smoke
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_dg_images import apply_smoke, get_default_config

VARIANTS = ("smoke",)


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.data.update(path="imagenet256.npz", resolution=256, num_classes=1000)
    config.score.update(family="adm", checkpoint="ckpt/adm256")
    del config.score.arch  # an ADM UNet: score.flags (from the converted checkpoint) instead
    config.sampler.respacing = "250"  # DDPM-G++; "ddim25" for DDIM-G++
    config.generate.batch_size = 250
    config.disc.update(conditional=True, classifier="ckpt/adm256_classifier_dg",
                       time_sampling="uniform", num_steps=20000, checkpoint_every=2000)
    config.disc.classifier_flags = {}  # the converted classifier carries its flags
    config.disc.head_flags.in_channels = 1024
    config.sample.batch_size = 250
    config.dg.weight_1st = 1.0
    config.cg.update(scale=1.0, classifier="ckpt/adm256_classifier")
    config.eval.update(batch_size=250, path_samples=250)
    if arg.smoke:
        config.data.num_classes = 10
        apply_smoke(config, family="adm")
        config.cg.update(scale=0.0, classifier="")  # no classifier guidance at smoke size
    return config
