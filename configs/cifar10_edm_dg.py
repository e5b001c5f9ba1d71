"""EDM-G++ on CIFAR-10 (DG paper, Table 2): EDM's VP model refined by DG.

Paper FIDs (50k samples, 35 NFE): unconditional 2.03 -> 1.77, conditional 1.79 -> 1.64.

Files users already have (EDM's and DG's releases; nothing is downloaded at run time):
  edm-cifar10-32x32-uncond-vp.pkl / edm-cifar10-32x32-cond-vp.pkl   (EDM)
  32x32_classifier.pt (DG's ADM classifier, feature extractor), discriminator_60.pt (DG's head)
  cifar10-32x32.npz (EDM/DG's FID reference statistics), pt_inception-2015-12-05-6726825d.pth
  true_data.npz (DG's CIFAR-10 real data, `arr_0` uint8 NHWC [+ labels]; only to train a head)

DG's own workflow (its README: pretrained EDM network, classifier and head; sample; FID):
  python -m launch.convert --kind=edm --checkpoint=edm-cifar10-32x32-uncond-vp.pkl --output=ckpt/edm_uncond
  python -m launch.convert --kind=dg_discriminator --classifier=32x32_classifier.pt \
      --checkpoint=discriminator_60.pt --flags='{"image_size": 32, "classifier_use_fp16": false, "classifier_width": 128, "classifier_depth": 4, "classifier_attention_resolutions": "32,16,8", "classifier_use_scale_shift_norm": true, "classifier_resblock_updown": true, "classifier_pool": "attention", "out_channels": 1000}' \
      --head_flags='{"image_size": 8, "classifier_use_fp16": false, "classifier_width": 128, "classifier_depth": 2, "classifier_attention_resolutions": "32,16,8", "classifier_use_scale_shift_norm": true, "classifier_resblock_updown": true, "classifier_pool": "attention", "out_channels": 1, "in_channels": 512}' \
      --output=ckpt/dg_uncond
  python -m launch.main --config=configs/cifar10_edm_dg.py --workdir=/tmp/dg_cifar10 \
      --config.score.checkpoint=ckpt/edm_uncond --config.disc.source=converted \
      --config.disc.checkpoint=ckpt/dg_uncond --config.eval.ref_stats=cifar10-32x32.npz \
      --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth
(the official files may also be given directly, e.g. --config.score.checkpoint=edm-cifar10-32x32-
uncond-vp.pkl or --config.disc.checkpoint=discriminator_60.pt with
--config.disc.classifier=32x32_classifier.pt: they are then converted in memory on every run).

Training the head yourself (DG's train.py: 50k EDM samples, then the head on real vs fake):
  python -m launch.convert --kind=adm_classifier --checkpoint=32x32_classifier.pt \
      --flags='{"image_size": 32, "classifier_use_fp16": false, "classifier_width": 128, "classifier_depth": 4, "classifier_attention_resolutions": "32,16,8", "classifier_use_scale_shift_norm": true, "classifier_resblock_updown": true, "classifier_pool": "attention", "out_channels": 1000}' \
      --output=ckpt/adm_classifier
  python -m launch.main --config=configs/cifar10_edm_dg.py --workdir=/tmp/dg_cifar10_train \
      --config.score.checkpoint=ckpt/edm_uncond --config.disc.classifier=ckpt/adm_classifier \
      --config.data.path=true_data.npz --config.eval.ref_stats=cifar10-32x32.npz \
      --config.eval.inception_weights=pt_inception-2015-12-05-6726825d.pth
Changing only sampling fields afterwards (--config.dg.weight_1st, dg.time_min, dg.boosting,
sampler.num_steps) in the same workdir redoes only sampling and evaluation.
Conditional: --config=configs/cifar10_edm_dg.py:cond (edm-cifar10-32x32-cond-vp.pkl, conditional
head). Smoke (tiny random networks; :smoke took 145 s on 2 idle CPU cores, 1 CPU device, measured 2026-11-30):
--config=configs/cifar10_edm_dg.py:smoke or :cond,smoke.
"""
import ml_collections

from configs.common import command_line, parse_arg
from configs.default_dg_images import apply_smoke, get_default_config

VARIANTS = ("cond", "smoke")


@command_line
def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    arg = parse_arg(arg, allowed_flags=VARIANTS)
    config = get_default_config()
    config.data.update(path="true_data.npz", num_classes=10 if arg.cond else 0)
    config.score.checkpoint = "ckpt/edm_cond" if arg.cond else "ckpt/edm_uncond"
    config.score.arch.init_kwargs.label_dim = 10 if arg.cond else 0
    config.disc.update(conditional=arg.cond, classifier="ckpt/adm_classifier")
    config.dg.boosting = not arg.cond
    if arg.smoke:
        apply_smoke(config)
    return config
