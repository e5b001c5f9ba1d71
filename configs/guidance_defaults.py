"""Fields shared by the guidance-training configs (not a config itself: see digits_guidance.py,
cifar10_iddpm.py, cifar10_edm_train.py, imagenet64_adm_cfg.py). Pipeline: 'guidance_train'."""
import ml_collections


def unet_fields(**overrides) -> dict:
    """guided-diffusion UNetModel fields (attention_resolutions as image sizes)."""
    fields = dict(model_channels=128, num_res_blocks=2, channel_mult=[1, 2, 2, 2],
                  attention_resolutions=[16, 8], dropout=0.0, num_heads=4, num_head_channels=-1,
                  use_scale_shift_norm=True, resblock_updown=False,
                  use_new_attention_order=False)
    fields.update(overrides)
    return fields


def diffusion_fields(**overrides) -> dict:
    """guided-diffusion create_gaussian_diffusion flags."""
    fields = dict(diffusion_steps=1000, noise_schedule="cosine", learn_sigma=True,
                  sigma_small=False, use_kl=False, predict_xstart=False,
                  rescale_learned_sigmas=False)
    fields.update(overrides)
    return fields


def train_fields(**overrides) -> dict:
    fields = dict(num_steps=1000, batch_size=128, learning_rate=1e-4, weight_decay=0.0,
                  grad_clip=0.0, ema_decay=0.9999, log_every=100, checkpoint_every=1000)
    fields.update(overrides)
    return fields


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.pipeline = "guidance_train"
    config.seed = 0
    config.tensorboard = False
    config.stages = ("score",)
    config.data = dict(source="npz", path="", resolution=32, channels=3, num_classes=10,
                       holdout=0)
    config.score = dict(
        family="iddpm", class_cond=False, p_uncond=0.0, schedule_sampler="uniform",
        unet=unet_fields(), diffusion=diffusion_fields(), train=train_fields(),
        # EDM family only: EDM's preconditioned network and its EMA / learning-rate schedules
        edm=dict(class_name="EDMPrecond", init_kwargs={}, ema_halflife_kimg=500.0,
                 ema_rampup_ratio=0.05, lr_rampup_kimg=10000.0))
    config.classifier = dict(
        model=dict(model_channels=128, num_res_blocks=2, channel_mult=[1, 2, 2, 2],
                   attention_resolutions=[16, 8], num_head_channels=64,
                   use_scale_shift_norm=True, resblock_updown=True, pool="attention"),
        train=train_fields(learning_rate=3e-4, weight_decay=0.05, batch_size=256))
    config.vlb = dict(unet=unet_fields(), diffusion=diffusion_fields(), train=train_fields(),
                      eval_batch_size=256)
    config.sweep = dict(sampler="ddpm", respacing="250", num_samples=1000, batch_size=250,
                        cg_weights=[0.0, 1.0], cfg_weights=[0.0, 1.0], cg_base="unconditional",
                        scorer_seed=1, scorer_steps=600)
    return ml_collections.ConfigDict(config)
