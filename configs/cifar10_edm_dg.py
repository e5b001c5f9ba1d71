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

from configs.dg_image_defaults import base_config
from configs.dg_image_smoke import apply_smoke
from configs.variants import parse_variants

VARIANTS = ("cond", "smoke")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    variants = parse_variants(arg, VARIANTS, __file__)
    cond = "cond" in variants
    config = base_config()
    config.data = dict(source="npz", path="true_data.npz", resolution=32, channels=3,
                       num_classes=10 if cond else 0)
    config.score.source = "converted"
    config.score.checkpoint = "ckpt/edm_cond" if cond else "ckpt/edm_uncond"
    # Architecture of EDM's CIFAR-10 VP model (used only with score.source='random'/'train').
    config.score.arch = dict(class_name="VPPrecond", init_kwargs=dict(
        img_resolution=32, img_channels=3, label_dim=10 if cond else 0, model_type="SongUNet",
        embedding_type="positional", encoder_type="standard", decoder_type="standard",
        channel_mult_noise=1, resample_filter=[1, 1], model_channels=128,
        channel_mult=[2, 2, 2], num_blocks=4, attn_resolutions=[16], dropout=0.13,
        augment_dim=9))
    config.generate = dict(num_samples=50000, batch_size=500, shard_size=5000)
    # DG's train.py: frozen 32x32 ADM classifier + head, Adam 3e-4, batch 128, importance sampling
    config.disc = dict(source="train", checkpoint="", kind="adm", compute_dtype="float32", attention_impl="auto",
                       channels=[], time_embed_dim=0,
                       conditional=cond,
                       classifier="ckpt/adm_classifier",
                       # DG's 32x32 ADM classifier (the converted file carries the same flags;
                       # these build it with random weights when disc.classifier="")
                       classifier_flags=dict(image_size=32, classifier_use_fp16=False,
                                             classifier_width=128, classifier_depth=4,
                                             classifier_attention_resolutions="32,16,8",
                                             classifier_use_scale_shift_norm=True,
                                             classifier_resblock_updown=True,
                                             classifier_pool="attention", out_channels=1000),
                       head_flags=dict(image_size=8, classifier_use_fp16=False, classifier_width=128, classifier_depth=2,
                                       classifier_attention_resolutions="32,16,8",
                                       classifier_use_scale_shift_norm=True,
                                       classifier_resblock_updown=True,
                                       classifier_pool="attention", out_channels=1,
                                       in_channels=512),
                       # precompute_draws=K: frozen features of K (tau, noise) draws per image,
                       # computed once; the head then trains on them (0: fresh draws each step)
                       precompute_draws=0,
                       time_sampling="importance", t_min=1e-5, optimizer="adam",
                       learning_rate=3e-4, batch_size=128, num_steps=60 * 782,
                       log_every=500, checkpoint_every=5000)
    config.sample = dict(num_samples=50000, batch_size=500, shard_size=5000)
    config.dg.weight_1st = 2.0
    config.dg.boosting = not cond
    config.eval = dict(ref_stats="", features="inception", inception_weights="", num_samples=50000,
                       batch_size=500, path_samples=500, classifier_steps=0)
    if "smoke" in variants:
        apply_smoke(config)
    return config
