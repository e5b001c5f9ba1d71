"""EDM-G++ on FFHQ 64x64 (DG paper, Table 2): FID 2.39 -> 1.98 (50k samples, 79 NFE).

Files: edm-ffhq-64x64-uncond-vp.pkl (EDM), DG's 64x64 ADM classifier (trained on the cosine VP;
DG maps tau to the cosine time for 64x64 models) and head, FFHQ64 real data as .npz
(`arr_0` uint8 NHWC), ffhq-64x64.npz statistics, pt_inception-2015-12-05-6726825d.pth.

Commands:
  python -m launch.convert --kind=edm --checkpoint=edm-ffhq-64x64-uncond-vp.pkl --output=ckpt/edm_ffhq64
  python -m launch.convert --kind=adm_classifier --checkpoint=64x64_classifier.pt \
      --flags='{"image_size": 64, "classifier_use_fp16": false, "classifier_width": 128, "classifier_depth": 4, "classifier_attention_resolutions": "32,16,8", "classifier_use_scale_shift_norm": true, "classifier_resblock_updown": true, "classifier_pool": "attention", "out_channels": 1000}' \
      --output=ckpt/adm_classifier64
  python -m launch.main --config=configs/ffhq64_edm_dg.py --workdir=/tmp/dg_ffhq64 \
      --config.data.path=ffhq64.npz --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth
Smoke (138 s on 2 idle CPU cores, 1 CPU device, measured 2026-11-30): --config=configs/ffhq64_edm_dg.py:smoke
"""
import ml_collections

from configs.cifar10_edm_dg import get_config as cifar_config
from configs.dg_image_smoke import apply_smoke
from configs.variants import parse_variants

VARIANTS = ("smoke",)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    smoke = "smoke" in parse_variants(arg, VARIANTS, __file__)
    config = cifar_config("")
    config.data = dict(source="npz", path="ffhq64.npz", resolution=64, channels=3, num_classes=0)
    config.score.checkpoint = "ckpt/edm_ffhq64"
    kw = config.score.arch.init_kwargs
    kw.img_resolution = 64
    kw.channel_mult = [1, 2, 2, 2]
    kw.dropout = 0.05
    config.sampler.num_steps = 40  # EDM's FFHQ setting: 79 NFE
    config.disc.classifier = "ckpt/adm_classifier64"
    config.disc.head_flags.in_channels = 512
    config.disc.conditional = False
    config.dg.boosting = False
    if smoke:
        apply_smoke(config)
    return config
