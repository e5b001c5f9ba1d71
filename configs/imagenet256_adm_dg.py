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

from configs.dg_image_defaults import base_config
from configs.dg_image_smoke import apply_smoke
from configs.variants import parse_variants

VARIANTS = ("smoke",)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    smoke = "smoke" in parse_variants(arg, VARIANTS, __file__)
    config = base_config()
    config.data = dict(source="npz", path="imagenet256.npz", resolution=256, channels=3,
                       num_classes=1000)
    config.score.family = "adm"
    config.score.source = "converted"
    config.score.checkpoint = "ckpt/adm256"
    config.score.flags = {}
    config.sampler.respacing = "250"  # DDPM-G++; "ddim25" for DDIM-G++
    config.generate = dict(num_samples=50000, batch_size=250, shard_size=5000)
    config.disc = dict(source="train", checkpoint="", kind="adm", compute_dtype="float32", attention_impl="auto",
                       channels=[], time_embed_dim=0,
                       conditional=True,
                       classifier="ckpt/adm256_classifier_dg", classifier_flags={},
                       head_flags=dict(image_size=8, classifier_use_fp16=False, classifier_width=128, classifier_depth=2,
                                       classifier_attention_resolutions="32,16,8",
                                       classifier_use_scale_shift_norm=True,
                                       classifier_resblock_updown=True,
                                       classifier_pool="attention", out_channels=1,
                                       in_channels=1024),
                       # precompute_draws=K: frozen features of K (tau, noise) draws per image,
                       # computed once; the head then trains on them (0: fresh draws each step)
                       precompute_draws=0,
                       time_sampling="uniform", t_min=1e-5, optimizer="adam",
                       learning_rate=3e-4, batch_size=128, num_steps=20000,
                       log_every=500, checkpoint_every=2000)
    config.sample = dict(num_samples=50000, batch_size=250, shard_size=5000)
    config.dg.weight_1st = 1.0
    config.cg = dict(scale=1.0, classifier="ckpt/adm256_classifier")
    config.eval = dict(ref_stats="", features="inception", inception_weights="", num_samples=50000,
                       batch_size=250, path_samples=250, classifier_steps=0)
    if smoke:
        config.data.num_classes = 10
        apply_smoke(config, family="adm")
        config.cg.scale = 0.0
        config.cg.classifier = ""  # no classifier guidance at smoke size: nothing to load
    return config
