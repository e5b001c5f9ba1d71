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

from configs.common import command_line, parse_arg
from configs.default_dg_images import apply_smoke, get_default_config

VARIANTS = ("smoke",)


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.data.update(path="ffhq64.npz", resolution=64)
    config.score.checkpoint = "ckpt/edm_ffhq64"
    config.score.arch.init_kwargs.update(img_resolution=64, channel_mult=[1, 2, 2, 2],
                                         dropout=0.05)
    config.sampler.num_steps = 40  # EDM's FFHQ setting: 79 NFE
    config.disc.classifier = "ckpt/adm_classifier64"
    if arg.smoke:
        apply_smoke(config)
    return config
