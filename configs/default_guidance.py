"""Defaults of the guidance-training configs (pipeline 'guidance_train'; not a config itself: see
digits_guidance.py, cifar10_iddpm.py, cifar10_edm_train.py, imagenet64_adm_cfg.py), and their
smoke size.

The networks and processes are guided-diffusion's flag sets, as its scripts and `launch.convert`
take them (dg_jax/models/adm_flags.py builds them for both pipelines):
- score.flags, vlb.flags: `model_and_diffusion_defaults()` names (the UNet and its process;
  attention_resolutions as image sizes, channel_mult as "1,2,2,2"); class_cond adds the label
  embedding (data.num_classes entries, + 1 null label with score.p_uncond > 0);
- classifier.flags: `classifier_defaults()` names, plus classifier_channel_mult ("": the
  multipliers guided-diffusion picks for the image size).
image_size, the image channels and the number of classes come from data.*.
"""
import ml_collections

from configs.common import base_config


def train_fields(**overrides) -> dict:
    """One training run's optimiser (Adam, AdamW with weight_decay > 0), EMA and cadence."""
    fields = dict(num_steps=1000, batch_size=128, learning_rate=1e-4, weight_decay=0.0,
                  grad_clip=0.0, ema_decay=0.9999, log_every=100, checkpoint_every=1000)
    fields.update(overrides)
    return fields


def unet_flags(**overrides) -> dict:
    """guided-diffusion model-and-diffusion flags: improved DDPM's hybrid loss (learned-range
    variance, cosine schedule) on a 4-level UNet."""
    flags = dict(num_channels=128, num_res_blocks=2, channel_mult="1,2,2,2",
                 attention_resolutions="16,8", num_heads=4, num_head_channels=-1, dropout=0.0,
                 class_cond=False, learn_sigma=True, use_scale_shift_norm=True,
                 resblock_updown=False, use_new_attention_order=False,
                 diffusion_steps=1000, noise_schedule="cosine", sigma_small=False, use_kl=False,
                 predict_xstart=False, rescale_learned_sigmas=False)
    flags.update(overrides)
    return flags


def get_default_config() -> ml_collections.ConfigDict:
    config = base_config("guidance_train", stages=("score",))
    config.data = dict(source="npz", path="", resolution=32, channels=3, num_classes=10,
                       holdout=0)
    config.score = dict(
        family="iddpm", p_uncond=0.0, schedule_sampler="uniform", flags=unet_flags(),
        train=train_fields(),
        # EDM family only: EDM's preconditioned network and its EMA / learning-rate schedules
        edm=dict(class_name="EDMPrecond", init_kwargs={}, ema_halflife_kimg=500.0,
                 ema_rampup_ratio=0.05, lr_rampup_kimg=10000.0))
    # guided-diffusion's classifier_defaults()
    config.classifier = dict(
        flags=dict(classifier_use_fp16=False, classifier_width=128, classifier_depth=2,
                   classifier_attention_resolutions="32,16,8",
                   classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                   classifier_pool="attention", classifier_channel_mult=""),
        train=train_fields(learning_rate=3e-4, weight_decay=0.05, batch_size=256))
    config.vlb = dict(flags=unet_flags(), train=train_fields(), eval_batch_size=256)
    # scorer 'digits' (scorer_seed, scorer_steps) or 'fashion_mnist' (its evaluation network,
    # cached in scorer_cache, "" = WORKDIR/eval_classifier); CG runs with each of cg_samplers
    # (ddpm: mean shift, ddim: eps shift) on the cg_base branch ('unconditional' or
    # 'conditional', ADM-G), CFG with sampler; DDIM respaces by ddim_respacing ("" = respacing;
    # "ddimN" = guided-diffusion's DDIM stride, first step t = T - stride, not T - 1)
    config.sweep = dict(sampler="ddpm", respacing="250", ddim_respacing="",
                        num_samples=1000, batch_size=250,
                        cg_weights=[0.0, 1.0], cfg_weights=[0.0, 1.0], cg_base="unconditional",
                        cg_samplers=["ddpm"], scorer="digits", scorer_seed=1, scorer_steps=600,
                        scorer_cache="")
    # stage 'cfg_dg': DG on top of CFG at cfg_weight (< 0: the sweep's lowest-FD CFG weight):
    # num_fake CFG samples, DG's discriminator = the frozen noisy classifier + a trained
    # class-conditional head (guided-diffusion classifier flags; image_size and in_channels
    # come from the classifier's features), then CFG + DG at each of weights (DG's w)
    config.cfg_dg = dict(
        cfg_weight=-1.0, num_fake=1000, weights=[0.0, 1.0, 2.0], num_steps=500, batch_size=32,
        learning_rate=1e-3, log_every=100, checkpoint_every=250,
        head_flags=dict(classifier_use_fp16=False, classifier_width=64, classifier_depth=1,
                        classifier_channel_mult="1", classifier_attention_resolutions="",
                        classifier_use_scale_shift_norm=True, classifier_resblock_updown=True,
                        classifier_pool="attention"))
    return config


def apply_smoke(config) -> None:
    """Smoke size: tiny networks (the config's own architecture choices otherwise) on synthetic
    8x8 images (data.source='random'), two steps a stage, so each config runs in the tests in
    seconds."""
    config.data.update(source="random", path="", resolution=8, channels=3)
    config.score.flags.update(num_channels=32, num_res_blocks=1, channel_mult="1,2",
                              attention_resolutions="4", num_heads=1, num_head_channels=32,
                              dropout=0.0, diffusion_steps=20)
    config.classifier.flags.update(classifier_width=32, classifier_depth=1,
                                   classifier_channel_mult="1,2",
                                   classifier_attention_resolutions="4")
    for train in (config.score.train, config.classifier.train):
        train.update(num_steps=2, batch_size=8, log_every=1, checkpoint_every=2)
    if config.score.edm.init_kwargs:
        config.score.edm.init_kwargs.update(img_resolution=8, model_channels=8,
                                            channel_mult=[1, 2], num_blocks=1,
                                            attn_resolutions=[4])
